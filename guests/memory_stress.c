// Test guest: allocates N blocks of M MiB in one block and reports whether all succeeded.
// It must never trap on a failed allocation: a failed malloc is the answer, not an error.
//
// Block payload: count N u32 LE ‖ size M u32 LE (MiB); missing fields count as 0. Flushes
//   result    -> "SUCCESS" (all N allocated) or "ERROR" (one failed; the rest are not tried)
//   allocated -> u32 LE number of allocations that succeeded
// The allocations are kept until the call ends, like Rust's Vec::try_reserve into a kept Vec, so
// the guest's memory really grows by N * M MiB (or up to the cap).
//
// View `allocate` and init call `init_allocate` take the same payload, allocate the same way and
// answer "SUCCESS <allocated>" or "ERROR <allocated>" (decimal). The memory stays with the
// instance: an init call's allocations are replayed into every new instance.
#include <stdlib.h>
#include <string.h>

#include "tandem_guest.h"

// Touch one byte in each 4 KiB so the host must back every page with real memory.
enum { kTouchStride = 4096 };

// The allocations live here so the compiler cannot prove them dead and drop them.
static volatile uint8_t* volatile* kept_allocations;

// Allocates what the payload asks (N u32 LE ‖ M u32 LE MiB), touching every page; returns whether
// all N allocations succeeded and sets *allocated to how many did.
static bool Allocate(const tg_input* input, uint32_t* allocated) {
  uint32_t count = input->payload_len >= 4 ? tg_read_u32le(input->payload) : 0;
  uint32_t size_mib = input->payload_len >= 8 ? tg_read_u32le(input->payload + 4) : 0;
  uint64_t size = (uint64_t)size_mib << 20;

  *allocated = 0;
  uint64_t table_bytes = (uint64_t)count * sizeof(uint8_t*) + 1;
  bool ok = size <= SIZE_MAX && table_bytes <= SIZE_MAX;
  kept_allocations = ok ? malloc((size_t)table_bytes) : NULL;
  if (kept_allocations == NULL) ok = false;
  for (uint32_t i = 0; ok && i < count; ++i) {
    volatile uint8_t* block = malloc((size_t)size);
    if (block == NULL) {
      ok = false;
      break;
    }
    for (uint64_t offset = 0; offset < size; offset += kTouchStride) block[offset] = (uint8_t)i;
    kept_allocations[i] = block;
    (*allocated)++;
  }
  return ok;
}

// Answers "SUCCESS <allocated>" or "ERROR <allocated>".
static int32_t AnswerAllocation(bool ok, uint32_t allocated) {
  char text[32];
  const char* result = ok ? "SUCCESS " : "ERROR ";
  size_t length = strlen(result);
  memcpy(text, result, length);
  char digits[10];
  size_t count = 0;
  do {
    digits[count++] = (char)('0' + allocated % 10);
    allocated /= 10;
  } while (allocated != 0);
  while (count > 0) text[length++] = digits[--count];
  return tg_answer(text, (uint32_t)length);
}

TG_EXPORT("allocate") int32_t AllocateView(void) {
  tg_input input = tg_load_input();
  uint32_t allocated = 0;
  bool ok = Allocate(&input, &allocated);
  tg_input_free(&input);
  return AnswerAllocation(ok, allocated);
}

TG_EXPORT("init_allocate") int32_t InitAllocate(void) {
  tg_input input = tg_load_input();
  uint32_t allocated = 0;
  bool ok = Allocate(&input, &allocated);
  tg_input_free(&input);
  return AnswerAllocation(ok, allocated);
}

TG_EXPORT("_start") void Start(void) {
  tg_input input = tg_load_input();
  uint32_t allocated = 0;
  bool ok = Allocate(&input, &allocated);

  uint8_t allocated_le[4];
  tg_write_u32le(allocated_le, allocated);
  const char* result = ok ? "SUCCESS" : "ERROR";
  tg_flush flush = TG_FLUSH_INIT;
  tg_flush_add(&flush, "result", 6, result, (uint32_t)strlen(result));
  tg_flush_add(&flush, "allocated", 9, allocated_le, sizeof allocated_le);
  tg_flush_send(&flush);
  tg_flush_free(&flush);
  tg_input_free(&input);
}
