// tandem's example indexer: indexes Bitcoin blocks by outpoint, spend and output script.
// It must never keep state in memory across calls: everything it knows lives in the store.
//
// Keys written by each block (all integers little-endian unless marked BE):
//   block/    height u32 BE              -> tx_count u32, output_count u32, output_sum_sat u64,
//                                           block id (32 bytes, internal byte order)
//   outpoint/ txid(32) vout u32          -> value_sat u64 ‖ scriptPubKey
//   spend/    prev txid(32) prev vout u32 -> spending txid(32) ‖ input index u32
//   script/   SHA-256(scriptPubKey)      -> received_sat u64 ‖ output_count u64 ‖ spent_sat u64
// Txids and block ids are in internal byte order (as hashed; explorers show them reversed).
//
// Reads within a block: the host shows a block its own writes only once they are flushed. Rather
// than flush after every transaction, the indexer keeps the block's writes in an in-memory
// overlay (`block_writes`), reads through it, and flushes it once at the end, so an output
// created and spent in the same block, or a script paid twice, sees the block's earlier updates.
// The overlay is emptied when the block ends, so nothing survives into the next call.
#include <stdlib.h>
#include <string.h>

#include "bitcoin_block.h"
#include "sha256.h"
#include "tandem_guest.h"

// ---------------------------------------------------------------------------------------------
// Keys.

static const char kBlockPrefix[] = "block/";
static const char kOutpointPrefix[] = "outpoint/";
static const char kSpendPrefix[] = "spend/";
static const char kScriptPrefix[] = "script/";

enum {
  kOutpointBytes = kBtcHashBytes + 4,  // txid ‖ vout
  kSummaryBytes = 4 + 4 + 8 + kBtcHashBytes,
  kScriptTotalsBytes = 3 * 8,
  kMaxKeyBytes = 16 + kOutpointBytes,  // The longest prefix is shorter than 16 bytes.
};

typedef struct {
  uint8_t bytes[kMaxKeyBytes];
  uint32_t len;
} Key;

// prefix ‖ body. The prefix is a string literal, without its NUL.
static Key MakeKey(const char *prefix, const uint8_t *body, uint32_t body_len) {
  Key key;
  uint32_t prefix_len = (uint32_t)strlen(prefix);
  memcpy(key.bytes, prefix, prefix_len);
  memcpy(key.bytes + prefix_len, body, body_len);
  key.len = prefix_len + body_len;
  return key;
}

static Key BlockKey(uint32_t height) {
  uint8_t height_be[4];
  tg_write_u32be(height_be, height);
  return MakeKey(kBlockPrefix, height_be, sizeof height_be);
}

static Key OutpointKey(const char *prefix, const uint8_t txid[kBtcHashBytes], uint32_t vout) {
  uint8_t outpoint[kOutpointBytes];
  memcpy(outpoint, txid, kBtcHashBytes);
  tg_write_u32le(outpoint + kBtcHashBytes, vout);
  return MakeKey(prefix, outpoint, sizeof outpoint);
}

static Key ScriptKey(const uint8_t *script, size_t script_len) {
  uint8_t script_hash[kSha256Bytes];
  sha256(script, script_len, script_hash);
  return MakeKey(kScriptPrefix, script_hash, sizeof script_hash);
}

// ---------------------------------------------------------------------------------------------
// State: the store as of the previous block, overlaid with this block's writes.

static tg_map block_writes = TG_MAP_INIT;

// A value read from state. `data` is borrowed from the overlay or owned through `owned`.
typedef struct {
  const uint8_t *data;  // NULL when the key is absent.
  uint32_t len;
  uint8_t *owned;  // Set when the value came from the host; freed by ReleaseValue.
} Value;

// Returns the value at key. An overlay value is valid until the next write of that key.
static Value ReadState(const Key *key) {
  const tg_map_entry *written = tg_map_find(&block_writes, key->bytes, key->len);
  if (written != NULL) {
    return (Value){.data = written->value, .len = written->value_len, .owned = NULL};
  }
  uint32_t len;
  uint8_t *value = tg_get(key->bytes, key->len, &len);
  return (Value){.data = value, .len = len, .owned = value};
}

static void ReleaseValue(Value *value) {
  tg_bytes_free(value->owned);
  *value = (Value){NULL, 0, NULL};
}

static void WriteState(const Key *key, const uint8_t *value, uint32_t value_len) {
  tg_map_put(&block_writes, key->bytes, key->len, value, value_len);
}

// Sends the block's writes to the host in one flush (in first-write order) and empties the
// overlay. The flush happens even for a block that wrote nothing, as the host requires.
static void FlushBlockWrites(void) {
  tg_flush flush = TG_FLUSH_INIT;
  for (uint32_t i = 0; i < block_writes.count; ++i) {
    const tg_map_entry *entry = &block_writes.entries[i];
    tg_flush_add(&flush, entry->key, entry->key_len, entry->value, entry->value_len);
  }
  tg_flush_send(&flush);
  tg_flush_free(&flush);
  tg_map_clear(&block_writes);
}

// Adds to the running totals of one output script, keyed by ScriptKey: reads them (from the
// overlay or the store), then writes them back to the overlay.
static void AddToScriptTotals(const Key *key, uint64_t received_sat, uint64_t outputs,
                              uint64_t spent_sat) {
  uint8_t totals[kScriptTotalsBytes] = {0};
  Value old = ReadState(key);
  if (old.len == kScriptTotalsBytes) memcpy(totals, old.data, kScriptTotalsBytes);
  ReleaseValue(&old);
  tg_write_u64le(totals, tg_read_u64le(totals) + received_sat);
  tg_write_u64le(totals + 8, tg_read_u64le(totals + 8) + outputs);
  tg_write_u64le(totals + 16, tg_read_u64le(totals + 16) + spent_sat);
  WriteState(key, totals, sizeof totals);
}

// ---------------------------------------------------------------------------------------------
// Indexing one block.

// Appends the decimal digits of value to out; returns the new end.
static char *AppendDecimal(char *out, uint64_t value) {
  char digits[20];
  int count = 0;
  do {
    digits[count++] = (char)('0' + value % 10);
    value /= 10;
  } while (value > 0);
  while (count > 0) *out++ = digits[--count];
  return out;
}

// Gives up on a block that does not parse: "malformed block: <what> at byte <offset>".
__attribute__((noreturn)) static void AbortMalformed(btc_status status, size_t offset) {
  char message[160] = "malformed block: ";
  char *end = message + strlen(message);
  const char *what = btc_status_message(status);
  size_t what_len = strlen(what);
  memcpy(end, what, what_len);
  end += what_len;
  memcpy(end, " at byte ", 9);
  end = AppendDecimal(end + 9, offset);
  *end = '\0';
  tg_abort(message, "bitcoin_indexer.c", __LINE__, 0);
}

// Logs "indexed height H: T transactions, O outputs" (one short line per block).
static void LogBlockIndexed(uint32_t height, uint32_t tx_count, uint32_t output_count) {
  char line[96] = "indexed height ";
  char *end = AppendDecimal(line + strlen(line), height);
  memcpy(end, ": ", 2);
  end = AppendDecimal(end + 2, tx_count);
  memcpy(end, " transactions, ", 15);
  end = AppendDecimal(end + 15, output_count);
  memcpy(end, " outputs", 8);
  tg_log_bytes(line, (uint32_t)(end + 8 - line));
}

// Records who spent each outpoint, and credits spent_sat of the script that owned it when the
// outpoint was indexed (outputs from before the indexed range are unknown and only recorded).
static void IndexInputs(const btc_tx *tx) {
  btc_cursor inputs = btc_tx_inputs(tx);
  btc_txin input;
  for (uint32_t index = 0; btc_next_input(&inputs, &input); ++index) {
    if (btc_txin_is_coinbase(&input)) continue;

    uint8_t spender[kBtcHashBytes + 4];
    memcpy(spender, tx->txid, kBtcHashBytes);
    tg_write_u32le(spender + kBtcHashBytes, index);
    Key spend_key = OutpointKey(kSpendPrefix, input.prev_txid, input.prev_vout);
    WriteState(&spend_key, spender, sizeof spender);

    Key outpoint_key = OutpointKey(kOutpointPrefix, input.prev_txid, input.prev_vout);
    Value spent = ReadState(&outpoint_key);
    if (spent.len >= 8) {
      // Copy out what we need before releasing: the data may be borrowed from the overlay.
      uint64_t value_sat = tg_read_u64le(spent.data);
      Key script_key = ScriptKey(spent.data + 8, spent.len - 8);
      ReleaseValue(&spent);
      AddToScriptTotals(&script_key, 0, 0, value_sat);
    } else {
      ReleaseValue(&spent);
    }
  }
}

// Records each output by outpoint and credits its script. Returns the sum of the values.
static uint64_t IndexOutputs(const btc_tx *tx) {
  uint64_t sum_sat = 0;
  btc_cursor outputs = btc_tx_outputs(tx);
  btc_txout output;
  for (uint32_t vout = 0; btc_next_output(&outputs, &output); ++vout) {
    Key key = OutpointKey(kOutpointPrefix, tx->txid, vout);
    uint32_t value_len = 8 + (uint32_t)output.script_pubkey_len;
    uint8_t *value = tg_malloc(value_len);
    tg_write_u64le(value, output.value_sat);
    memcpy(value + 8, output.script_pubkey, output.script_pubkey_len);
    WriteState(&key, value, value_len);
    free(value);

    Key script_key = ScriptKey(output.script_pubkey, output.script_pubkey_len);
    AddToScriptTotals(&script_key, output.value_sat, 1, 0);
    sum_sat += output.value_sat;
  }
  return sum_sat;
}

// Input: height ‖ serialized block. Writes the keys listed at the top of the file.
TG_EXPORT("_start") void Start(void) {
  tg_input input = tg_load_input();
  btc_block block;
  btc_status status = btc_block_open(&block, input.payload, input.payload_len);
  if (status != kBtcOk) AbortMalformed(status, block.error_offset);

  uint32_t tx_count = 0, output_count = 0;
  uint64_t output_sum_sat = 0;
  btc_tx tx;
  while ((status = btc_block_next_tx(&block, &tx)) == kBtcOk) {
    // Inputs first: a transaction never spends its own outputs, but it may spend an output of an
    // earlier transaction in this block, which the overlay already holds.
    IndexInputs(&tx);
    output_sum_sat += IndexOutputs(&tx);
    output_count += (uint32_t)tx.output_count;
    tx_count++;
  }
  if (status != kBtcNoMoreTransactions) {
    AbortMalformed(status, status == kBtcTrailingBytes ? block.reader.pos : block.error_offset);
  }

  uint8_t summary[kSummaryBytes];
  tg_write_u32le(summary, tx_count);
  tg_write_u32le(summary + 4, output_count);
  tg_write_u64le(summary + 8, output_sum_sat);
  memcpy(summary + 16, block.id, kBtcHashBytes);
  Key summary_key = BlockKey(input.height);
  WriteState(&summary_key, summary, sizeof summary);

  FlushBlockWrites();
  LogBlockIndexed(input.height, tx_count, output_count);
  tg_input_free(&input);
}

// ---------------------------------------------------------------------------------------------
// Views. Each answers from the store at the requested height; an unknown key answers empty.

// Answers with the value at key, or empty, and frees the view's input.
static int32_t AnswerWithValue(const Key *key, tg_input *input) {
  Value value = ReadState(key);
  int32_t answer = tg_answer(value.data, value.len);
  ReleaseValue(&value);
  tg_input_free(input);
  return answer;
}

// Request: empty (the view's height) or u32 LE height. Answer: the 48-byte block summary.
TG_EXPORT("block_summary") int32_t BlockSummary(void) {
  tg_input input = tg_load_input();
  uint32_t height = input.height;
  if (input.payload_len == 4) {
    height = tg_read_u32le(input.payload);
  } else if (input.payload_len != 0) {
    TG_ABORT("block_summary request must be empty or a u32 LE height");
  }
  Key key = BlockKey(height);
  return AnswerWithValue(&key, &input);
}

// Request: txid(32, internal order) ‖ vout u32 LE. Answer: value_sat u64 LE ‖ scriptPubKey.
TG_EXPORT("outpoint") int32_t Outpoint(void) {
  tg_input input = tg_load_input();
  if (input.payload_len != kOutpointBytes)
    TG_ABORT("outpoint request must be txid (32 bytes) + vout (u32 LE)");
  Key key = OutpointKey(kOutpointPrefix, input.payload, tg_read_u32le(input.payload + 32));
  return AnswerWithValue(&key, &input);
}

// Request: txid(32, internal order) ‖ vout u32 LE. Answer: spending txid(32) ‖ input index u32.
TG_EXPORT("spend") int32_t Spend(void) {
  tg_input input = tg_load_input();
  if (input.payload_len != kOutpointBytes)
    TG_ABORT("spend request must be txid (32 bytes) + vout (u32 LE)");
  Key key = OutpointKey(kSpendPrefix, input.payload, tg_read_u32le(input.payload + 32));
  return AnswerWithValue(&key, &input);
}

// Request: raw scriptPubKey bytes. Answer: received_sat u64 ‖ output_count u64 ‖ spent_sat u64.
TG_EXPORT("script_totals") int32_t ScriptTotals(void) {
  tg_input input = tg_load_input();
  Key key = ScriptKey(input.payload, input.payload_len);
  return AnswerWithValue(&key, &input);
}
