// Test guest: allocates N blocks of M MiB in one block and reports whether all succeeded.
// It must never trap on a failed allocation: a failed malloc is the answer, not an error.
//
// Block payload: count N u32 LE ‖ size M u32 LE (MiB); missing fields count as 0. Flushes
//   result    -> "SUCCESS" (all N allocated) or "ERROR" (one failed; the rest are not tried)
//   allocated -> u32 LE number of allocations that succeeded
// The allocations are kept until the call ends, like Rust's Vec::try_reserve into a kept Vec, so
// the guest's memory really grows by N * M MiB (or up to the cap).
#include <stdlib.h>
#include <string.h>

#include "tandem_guest.h"

// Touch one byte in each 4 KiB so the host must back every page with real memory.
enum { kTouchStride = 4096 };

// The allocations live here so the compiler cannot prove them dead and drop them.
static volatile uint8_t *volatile *kept_allocations;

TG_EXPORT("_start") void Start(void) {
  tg_input input = tg_load_input();
  uint32_t count = input.payload_len >= 4 ? tg_read_u32le(input.payload) : 0;
  uint32_t size_mib = input.payload_len >= 8 ? tg_read_u32le(input.payload + 4) : 0;
  uint64_t size = (uint64_t)size_mib << 20;

  uint32_t allocated = 0;
  uint64_t table_bytes = (uint64_t)count * sizeof(uint8_t *) + 1;
  bool ok = size <= SIZE_MAX && table_bytes <= SIZE_MAX;
  kept_allocations = ok ? malloc((size_t)table_bytes) : NULL;
  if (kept_allocations == NULL) ok = false;
  for (uint32_t i = 0; ok && i < count; ++i) {
    volatile uint8_t *block = malloc((size_t)size);
    if (block == NULL) {
      ok = false;
      break;
    }
    for (uint64_t offset = 0; offset < size; offset += kTouchStride) block[offset] = (uint8_t)i;
    kept_allocations[i] = block;
    allocated++;
  }

  uint8_t allocated_le[4];
  tg_write_u32le(allocated_le, allocated);
  const char *result = ok ? "SUCCESS" : "ERROR";
  tg_flush flush = TG_FLUSH_INIT;
  tg_flush_add(&flush, "result", 6, result, (uint32_t)strlen(result));
  tg_flush_add(&flush, "allocated", 9, allocated_le, sizeof allocated_le);
  tg_flush_send(&flush);
  tg_flush_free(&flush);
  tg_input_free(&input);
}
