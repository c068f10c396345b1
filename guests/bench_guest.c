// tandem's benchmark guest: an indexer of realistic size (2–3 MB of code, libc's snprintf) whose
// blocks, views and init calls cost about what a real indexer's do. It must never keep state in
// memory across blocks (so every swap policy indexes it identically) and never import beyond the
// host ABI.
//
// Size without a slow build: 2,000 "handlers" (one per kind of thing an indexer might recognise)
// are stamped out by the preprocessor from one macro, each with its own constants so no two
// compile to the same code, and kept alive by a function-pointer table that _start dispatches
// through. clang -O2 spends about 10 us of optimizer time per byte of wasm it emits for code like
// this (a 2.6 MB guest of 8,000 generated functions took 43 s; this file's handlers at -O2 took
// 30 s), so the handlers alone are marked optnone: LLVM skips its IR pipeline and selects
// instructions with FastISel for them, about six times faster per byte, and the guest builds in
// a few seconds. Everything else (the block parser, SHA-256, libc) is -O2 as usual. The handlers'
// code is therefore shaped like a debug build (locals kept on the shadow stack), which is still
// code that V8 validates, compiles and instantiates byte for byte: what the benchmarks measure.
//
// _start (block): payload = one serialized Bitcoin block (guests/bitcoin_block.c parses it).
//   For every transaction, four handlers picked by its txid bytes mix the txid into a running
//   digest; for every output, one handler picked by its script's first bytes mixes the script.
//   Reads `bench/blocks` (u32 LE, the number of blocks indexed so far) and, when an init call
//   has set one, uses the configuration as the digest's seed. Writes (one __flush):
//     bench/blocks               -> u32 LE: blocks indexed, this one included
//     bench/block/ ‖ height u32 BE -> tx_count u32 ‖ output_count u32 ‖ digest u32 ‖ handlers u32
//     bench/last                 -> text "height H: T txs, O outputs, digest XXXXXXXX" (snprintf)
// stats (view, request ignored): text "height H: blocks B, txs T, outputs O, digest XXXXXXXX"
//   (snprintf) from bench/blocks and bench/block/ at the view's height; "height H: no block" when
//   that height wrote nothing.
// init_config (init call): payload = any bytes. Runs every byte through a handler, keeps the
//   resulting seed (a later call replaces it) and answers it as u32 LE. Deterministic in the
//   payload alone, so replaying the log reproduces every answer.
// config (view, request ignored): the seed as u32 LE (0 before any init_config).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bitcoin_block.h"
#include "tandem_guest.h"

// ---------------------------------------------------------------------------------------------
// libc without WASI. snprintf writes to memory only, but wasi-libc's vfprintf refers to stderr,
// whose FILE refers to the stdio back ends, which import fd_write, fd_seek and fd_close from
// WASI: the host would refuse the module. Defining the three back ends here keeps libc's own
// out of the link. Nothing in this guest uses a stream; if libc ever wrote to one, the call aborts.

size_t __stdio_write(FILE *file, const unsigned char *data, size_t len) {
  (void)file, (void)data, (void)len;
  TG_ABORT("bench_guest: libc tried to write to a stream");
}

off_t __stdio_seek(FILE *file, off_t offset, int whence) {
  (void)file, (void)offset, (void)whence;
  return -1;
}

int __stdio_close(FILE *file) {
  (void)file;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The handlers: kHandlerCount functions of the same shape, distinct constants.

// Sixteen mixing steps over 64 bytes at p. Every constant depends on the handler's id and the
// step, so the optimizer can neither fold handlers together nor shorten one.
#define BG_STEP(id, k)                                                                 \
  a ^= p[((id) * 7u + (k) * 13u) & 63u];                                               \
  a *= (uint32_t)(((id) * 2654435761u + (k) * 40503u) | 1u);                           \
  a = __builtin_rotateleft32(a, ((id) + (k)) % 31u + 1u);                              \
  b += a ^ (uint32_t)((id) * 97u + (k) * 1000003u);
#define BG_STEPS(id)                                                                    \
  BG_STEP(id, 1) BG_STEP(id, 2) BG_STEP(id, 3) BG_STEP(id, 4) BG_STEP(id, 5)           \
  BG_STEP(id, 6) BG_STEP(id, 7) BG_STEP(id, 8) BG_STEP(id, 9) BG_STEP(id, 10)          \
  BG_STEP(id, 11) BG_STEP(id, 12) BG_STEP(id, 13) BG_STEP(id, 14) BG_STEP(id, 15)      \
  BG_STEP(id, 16)

// One handler: mixes 64 bytes at p into seed s. optnone: see the top of the file.
#define BG_HANDLER(id)                                                                  \
  __attribute__((optnone, noinline)) static uint32_t Handler##id(const uint8_t *p, uint32_t s) {                           \
    uint32_t a = s ^ (uint32_t)((id) * 2246822519u);                                    \
    uint32_t b = (uint32_t)(id);                                                        \
    BG_STEPS(id)                                                                        \
    return a ^ b;                                                                       \
  }
#define BG_POINTER(id) Handler##id,

// Repeats M over the ids p0..p9 (token pasting builds the decimal literal), then x10, x1000.
#define BG_R10(M, p) M(p##0) M(p##1) M(p##2) M(p##3) M(p##4) M(p##5) M(p##6) M(p##7) M(p##8) M(p##9)
#define BG_R100(M, p)                                                                   \
  BG_R10(M, p##0) BG_R10(M, p##1) BG_R10(M, p##2) BG_R10(M, p##3) BG_R10(M, p##4)      \
  BG_R10(M, p##5) BG_R10(M, p##6) BG_R10(M, p##7) BG_R10(M, p##8) BG_R10(M, p##9)
#define BG_R1000(M, p)                                                                  \
  BG_R100(M, p##0) BG_R100(M, p##1) BG_R100(M, p##2) BG_R100(M, p##3) BG_R100(M, p##4) \
  BG_R100(M, p##5) BG_R100(M, p##6) BG_R100(M, p##7) BG_R100(M, p##8) BG_R100(M, p##9)
// Ids 1000..2999.
#define BG_ALL(M) BG_R1000(M, 1) BG_R1000(M, 2)

BG_ALL(BG_HANDLER)

typedef uint32_t (*Handler)(const uint8_t *p, uint32_t s);
static const Handler kHandlers[] = {BG_ALL(BG_POINTER)};
enum { kHandlerCount = sizeof kHandlers / sizeof kHandlers[0] };

// Handlers called during the current call (reported per block).
static uint32_t handlers_called;

// Runs the handler chosen by `selector` over 64 bytes that start with data[0..len) (zero-padded).
static uint32_t Dispatch(uint32_t selector, const uint8_t *data, size_t len, uint32_t seed) {
  uint8_t window[64] = {0};
  memcpy(window, data, len < sizeof window ? len : sizeof window);
  handlers_called++;
  return kHandlers[selector % kHandlerCount](window, seed);
}

// ---------------------------------------------------------------------------------------------
// Configuration (init calls) and state.

// Set by init_config, replayed into every new instance by the host.
static uint32_t config_seed;

static const char kBlocksKey[] = "bench/blocks";
static const char kLastKey[] = "bench/last";
static const char kBlockPrefix[] = "bench/block/";

enum { kBlockKeyBytes = sizeof kBlockPrefix - 1 + 4, kBlockValueBytes = 16 };

static void BlockKey(uint32_t height, uint8_t key[kBlockKeyBytes]) {
  memcpy(key, kBlockPrefix, sizeof kBlockPrefix - 1);
  tg_write_u32be(key + sizeof kBlockPrefix - 1, height);
}

// The u32 LE at key, or 0 when absent (or not 4 bytes long).
static uint32_t ReadU32(const void *key, uint32_t key_len) {
  uint32_t len;
  uint8_t *value = tg_get(key, key_len, &len);
  uint32_t result = len == 4 ? tg_read_u32le(value) : 0;
  tg_bytes_free(value);
  return result;
}

__attribute__((noreturn)) static void AbortMalformed(btc_status status, size_t offset) {
  char message[160];
  snprintf(message, sizeof message, "malformed block: %s at byte %zu", btc_status_message(status),
           offset);
  tg_abort(message, "bench_guest.c", __LINE__, 0);
}

// ---------------------------------------------------------------------------------------------
// Exports.

TG_EXPORT("_start") void Start(void) {
  tg_input input = tg_load_input();
  handlers_called = 0;
  btc_block block;
  btc_status status = btc_block_open(&block, input.payload, input.payload_len);
  if (status != kBtcOk) AbortMalformed(status, block.error_offset);

  uint32_t digest = config_seed ^ input.height;
  uint32_t tx_count = 0, output_count = 0;
  btc_tx tx;
  while ((status = btc_block_next_tx(&block, &tx)) == kBtcOk) {
    for (int i = 0; i < 4; ++i) {
      digest = Dispatch(tg_read_u32le(tx.txid + 4 * i), tx.txid, kBtcHashBytes, digest);
    }
    btc_cursor outputs = btc_tx_outputs(&tx);
    btc_txout output;
    while (btc_next_output(&outputs, &output)) {
      uint32_t selector = (uint32_t)output.value_sat;
      if (output.script_pubkey_len >= 4) selector ^= tg_read_u32le(output.script_pubkey);
      digest = Dispatch(selector, output.script_pubkey, output.script_pubkey_len, digest);
      output_count++;
    }
    tx_count++;
  }
  if (status != kBtcNoMoreTransactions) {
    AbortMalformed(status, status == kBtcTrailingBytes ? block.reader.pos : block.error_offset);
  }

  uint8_t blocks[4];
  tg_write_u32le(blocks, ReadU32(kBlocksKey, sizeof kBlocksKey - 1) + 1);
  uint8_t key[kBlockKeyBytes];
  BlockKey(input.height, key);
  uint8_t summary[kBlockValueBytes];
  tg_write_u32le(summary, tx_count);
  tg_write_u32le(summary + 4, output_count);
  tg_write_u32le(summary + 8, digest);
  tg_write_u32le(summary + 12, handlers_called);
  char last[96];
  int last_len = snprintf(last, sizeof last, "height %u: %u txs, %u outputs, digest %08x",
                          (unsigned)input.height, (unsigned)tx_count, (unsigned)output_count,
                          (unsigned)digest);

  tg_flush flush = TG_FLUSH_INIT;
  tg_flush_add(&flush, kBlocksKey, sizeof kBlocksKey - 1, blocks, sizeof blocks);
  tg_flush_add(&flush, key, sizeof key, summary, sizeof summary);
  tg_flush_add(&flush, kLastKey, sizeof kLastKey - 1, last, (uint32_t)last_len);
  tg_flush_send(&flush);
  tg_flush_free(&flush);
  tg_input_free(&input);
}

TG_EXPORT("stats") int32_t Stats(void) {
  tg_input input = tg_load_input();
  uint8_t key[kBlockKeyBytes];
  BlockKey(input.height, key);
  uint32_t len;
  uint8_t *summary = tg_get(key, sizeof key, &len);
  char text[128];
  int text_len;
  if (len == kBlockValueBytes) {
    text_len = snprintf(text, sizeof text, "height %u: blocks %u, txs %u, outputs %u, digest %08x",
                        (unsigned)input.height,
                        (unsigned)ReadU32(kBlocksKey, sizeof kBlocksKey - 1),
                        (unsigned)tg_read_u32le(summary), (unsigned)tg_read_u32le(summary + 4),
                        (unsigned)tg_read_u32le(summary + 8));
  } else {
    text_len = snprintf(text, sizeof text, "height %u: no block", (unsigned)input.height);
  }
  tg_bytes_free(summary);
  tg_input_free(&input);
  return tg_answer(text, (uint32_t)text_len);
}

TG_EXPORT("init_config") int32_t InitConfig(void) {
  tg_input input = tg_load_input();
  uint32_t seed = 0x7a6e6474;  // "tndz"
  for (uint32_t at = 0; at < input.payload_len; at += 64) {
    uint32_t len = input.payload_len - at;
    seed = Dispatch(seed, input.payload + at, len, seed);
  }
  config_seed = seed;
  tg_input_free(&input);
  uint8_t answer[4];
  tg_write_u32le(answer, seed);
  return tg_answer(answer, sizeof answer);
}

TG_EXPORT("config") int32_t Config(void) {
  uint8_t answer[4];
  tg_write_u32le(answer, config_seed);
  return tg_answer(answer, sizeof answer);
}
