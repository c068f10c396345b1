// A zero-copy parser for serialized Bitcoin blocks (legacy and segwit transactions).
// It must never allocate or touch the host ABI: it is compiled natively too, to be tested there.
#include "bitcoin_block.h"

#include <string.h>

const char *btc_status_message(btc_status status) {
  switch (status) {
    case kBtcOk:
      return "ok";
    case kBtcTruncatedHeader:
      return "truncated block header";
    case kBtcTruncatedTxCount:
      return "truncated transaction count";
    case kBtcTruncatedTransaction:
      return "truncated transaction";
    case kBtcTruncatedInput:
      return "truncated transaction input";
    case kBtcTruncatedOutput:
      return "truncated transaction output";
    case kBtcTruncatedWitness:
      return "truncated witness";
    case kBtcBadSegwitFlag:
      return "segwit marker without flag 0x01";
    case kBtcCountTooLarge:
      return "count larger than the bytes left";
    case kBtcNoMoreTransactions:
      return "no more transactions";
    case kBtcTrailingBytes:
      return "bytes after the last transaction";
  }
  return "unknown error";
}

// ---------------------------------------------------------------------------------------------
// Reading primitives. Each returns false, leaving the reader where the failed item starts, when
// the bytes run out.

static size_t Remaining(const btc_reader *r) { return r->len - r->pos; }

static bool Skip(btc_reader *r, size_t n) {
  if (Remaining(r) < n) return false;
  r->pos += n;
  return true;
}

static bool ReadU32(btc_reader *r, uint32_t *out) {
  if (Remaining(r) < 4) return false;
  const uint8_t *p = r->data + r->pos;
  *out = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  r->pos += 4;
  return true;
}

static bool ReadU64(btc_reader *r, uint64_t *out) {
  uint32_t low, high;
  if (Remaining(r) < 8) return false;
  ReadU32(r, &low);
  ReadU32(r, &high);
  *out = (uint64_t)high << 32 | low;
  return true;
}

// Bitcoin's CompactSize: one byte below 0xFD, else a 0xFD/0xFE/0xFF prefix and 2/4/8 bytes LE.
static bool ReadVarint(btc_reader *r, uint64_t *out) {
  if (Remaining(r) < 1) return false;
  uint8_t first = r->data[r->pos];
  size_t width = first < 0xFD ? 0 : first == 0xFD ? 2 : first == 0xFE ? 4 : 8;
  if (Remaining(r) < 1 + width) return false;
  if (width == 0) {
    *out = first;
  } else {
    uint64_t value = 0;
    for (size_t i = 0; i < width; ++i) value |= (uint64_t)r->data[r->pos + 1 + i] << (8 * i);
    *out = value;
  }
  r->pos += 1 + width;
  return true;
}

// A varint length followed by that many bytes.
static bool SkipVarBytes(btc_reader *r) {
  size_t start = r->pos;
  uint64_t len;
  if (!ReadVarint(r, &len) || len > Remaining(r)) {
    r->pos = start;
    return false;
  }
  r->pos += (size_t)len;
  return true;
}

// A count of items each at least min_item_bytes long: rejects counts the bytes cannot hold, so
// a corrupt count fails fast instead of looping for 2^64 items.
static bool ReadCount(btc_reader *r, size_t min_item_bytes, uint64_t *count, btc_status *status) {
  if (!ReadVarint(r, count)) return false;
  if (*count > Remaining(r) / min_item_bytes) {
    *status = kBtcCountTooLarge;
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Blocks.

btc_status btc_block_open(btc_block *block, const uint8_t *data, size_t len) {
  memset(block, 0, sizeof *block);
  block->reader = (btc_reader){.data = data, .len = len, .pos = 0};
  if (len < kBtcHeaderBytes) return kBtcTruncatedHeader;
  sha256d(data, kBtcHeaderBytes, block->id);
  block->reader.pos = kBtcHeaderBytes;
  btc_status status = kBtcTruncatedTxCount;
  // The smallest transaction: version, 1-byte counts, locktime.
  if (!ReadCount(&block->reader, 10, &block->tx_count, &status)) {
    block->error_offset = block->reader.pos;
    return status;
  }
  return kBtcOk;
}

// Sizes of the smallest input (outpoint, empty script, sequence) and output (value, empty script).
enum { kMinInputBytes = 41, kMinOutputBytes = 9 };

btc_status btc_block_next_tx(btc_block *block, btc_tx *tx) {
  btc_reader *r = &block->reader;
  if (block->txs_read == block->tx_count) {
    return Remaining(r) == 0 ? kBtcNoMoreTransactions : kBtcTrailingBytes;
  }
  memset(tx, 0, sizeof *tx);
  tx->offset = r->pos;
  btc_status status = kBtcTruncatedTransaction;

  uint32_t version;
  if (!ReadU32(r, &version)) goto fail;
  // Segwit: a 0x00 marker where the input count would be (no transaction has zero inputs), then
  // flag 0x01. The input count follows.
  if (Remaining(r) >= 1 && r->data[r->pos] == 0x00) {
    if (Remaining(r) < 2) goto fail;
    if (r->data[r->pos + 1] != 0x01) {
      status = kBtcBadSegwitFlag;
      goto fail;
    }
    tx->has_witness = true;
    r->pos += 2;
  }
  // The txid covers version, inputs, outputs and locktime: inputs and outputs are contiguous, so
  // hashing takes three pieces, skipping marker, flag and witnesses.
  size_t body_start = r->pos;

  status = kBtcTruncatedInput;
  if (!ReadCount(r, kMinInputBytes, &tx->input_count, &status)) goto fail;
  tx->inputs = r->data + r->pos;
  for (uint64_t i = 0; i < tx->input_count; ++i) {
    if (!Skip(r, 36) || !SkipVarBytes(r) || !Skip(r, 4)) goto fail;
  }

  status = kBtcTruncatedOutput;
  if (!ReadCount(r, kMinOutputBytes, &tx->output_count, &status)) goto fail;
  tx->outputs = r->data + r->pos;
  for (uint64_t i = 0; i < tx->output_count; ++i) {
    if (!Skip(r, 8) || !SkipVarBytes(r)) goto fail;
  }
  size_t body_end = r->pos;

  if (tx->has_witness) {
    // One witness stack per input: a count of items, each a varint length and bytes.
    status = kBtcTruncatedWitness;
    for (uint64_t i = 0; i < tx->input_count; ++i) {
      uint64_t items;
      if (!ReadCount(r, 1, &items, &status)) goto fail;
      for (uint64_t j = 0; j < items; ++j) {
        if (!SkipVarBytes(r)) goto fail;
      }
    }
  }

  status = kBtcTruncatedTransaction;
  uint32_t locktime;
  size_t locktime_start = r->pos;
  if (!ReadU32(r, &locktime)) goto fail;

  sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, r->data + tx->offset, 4);
  sha256_update(&ctx, r->data + body_start, body_end - body_start);
  sha256_update(&ctx, r->data + locktime_start, 4);
  uint8_t first[kSha256Bytes];
  sha256_final(&ctx, first);
  sha256(first, sizeof first, tx->txid);

  tx->size = r->pos - tx->offset;
  block->txs_read++;
  return kBtcOk;

fail:
  block->error_offset = r->pos;
  return status;
}

// ---------------------------------------------------------------------------------------------
// Inputs and outputs. The transaction was validated as a whole, so these trust the bytes; the
// reader length is a bound that the validated data never reaches.

btc_cursor btc_tx_inputs(const btc_tx *tx) {
  return (btc_cursor){.next = tx->inputs, .remaining = tx->input_count};
}

btc_cursor btc_tx_outputs(const btc_tx *tx) {
  return (btc_cursor){.next = tx->outputs, .remaining = tx->output_count};
}

bool btc_next_input(btc_cursor *cursor, btc_txin *input) {
  if (cursor->remaining == 0) return false;
  btc_reader r = {.data = cursor->next, .len = SIZE_MAX, .pos = 0};
  input->prev_txid = cursor->next;
  r.pos = 32;
  ReadU32(&r, &input->prev_vout);
  uint64_t script_len;
  ReadVarint(&r, &script_len);
  input->script_sig = r.data + r.pos;
  input->script_sig_len = (size_t)script_len;
  r.pos += (size_t)script_len;
  ReadU32(&r, &input->sequence);
  cursor->next += r.pos;
  cursor->remaining--;
  return true;
}

bool btc_next_output(btc_cursor *cursor, btc_txout *output) {
  if (cursor->remaining == 0) return false;
  btc_reader r = {.data = cursor->next, .len = SIZE_MAX, .pos = 0};
  ReadU64(&r, &output->value_sat);
  uint64_t script_len;
  ReadVarint(&r, &script_len);
  output->script_pubkey = r.data + r.pos;
  output->script_pubkey_len = (size_t)script_len;
  r.pos += (size_t)script_len;
  cursor->next += r.pos;
  cursor->remaining--;
  return true;
}

bool btc_txin_is_coinbase(const btc_txin *input) {
  if (input->prev_vout != 0xFFFFFFFFu) return false;
  for (int i = 0; i < kBtcHashBytes; ++i) {
    if (input->prev_txid[i] != 0) return false;
  }
  return true;
}
