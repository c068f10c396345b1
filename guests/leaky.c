// Test guest: leaks memory on purpose, a little every block, so instance refresh can be tested.
// It must never free what it leaks: the growing memory is the point.
//
// Block payload: K u32 LE (KiB to leak; 64 when the payload is empty). Flushes
//   block/ ‖ height u32 BE -> K u32 LE
// View `leaked` (any request): answers the total bytes leaked by this instance, u64 LE.
#include <stdlib.h>

#include "tandem_guest.h"

enum { kDefaultLeakKiB = 64, kTouchStride = 4096 };

// Total bytes leaked by this instance: in-memory state that a fresh instance starts again at 0.
static uint64_t leaked_bytes;
// The latest leak, kept reachable so the compiler cannot drop the allocation and its writes.
static volatile uint8_t *volatile latest_leak;

TG_EXPORT("_start") void Start(void) {
  tg_input input = tg_load_input();
  uint32_t kib = input.payload_len >= 4 ? tg_read_u32le(input.payload) : kDefaultLeakKiB;
  size_t bytes = (size_t)kib * 1024;

  volatile uint8_t *leak = tg_malloc(bytes);
  for (size_t offset = 0; offset < bytes; offset += kTouchStride) leak[offset] = 1;
  latest_leak = leak;
  leaked_bytes += bytes;

  uint8_t key[6 + 4] = {'b', 'l', 'o', 'c', 'k', '/'};
  tg_write_u32be(key + 6, input.height);
  uint8_t value[4];
  tg_write_u32le(value, kib);
  tg_write(key, sizeof key, value, sizeof value);
  tg_input_free(&input);
}

TG_EXPORT("leaked") int32_t Leaked(void) {
  uint8_t answer[8];
  tg_write_u64le(answer, leaked_bytes);
  return tg_answer(answer, sizeof answer);
}

// Init calls for warm-up tests. `init_ok` answers "ok"; `init_runaway` never returns, so a replay
// log that holds it makes every warm-up run into its deadline.
static volatile uint32_t spin_counter;

TG_EXPORT("init_ok") int32_t InitOk(void) { return tg_answer("ok", 2); }

TG_EXPORT("init_runaway") int32_t InitRunaway(void) {
  for (;;) spin_counter++;
  return 0;
}
