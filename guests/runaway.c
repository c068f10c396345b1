// Test guest: never finishes, so deadlines and TerminateExecution can be tested.
// It must never return from _start or init_runaway; init_ok is the control case.
//
// _start: loops forever without flushing. init_runaway (init call): loops forever.
// init_ok (init call): answers the 2 bytes "ok".
#include "tandem_guest.h"

// Volatile, so the loops have side effects the compiler must keep (an empty infinite loop may
// be assumed to terminate and removed).
static volatile uint32_t spin_counter;

static void SpinForever(void) {
  for (;;) spin_counter++;
}

TG_EXPORT("_start") void Start(void) { SpinForever(); }

TG_EXPORT("init_runaway") int32_t InitRunaway(void) {
  SpinForever();
  return 0;
}

TG_EXPORT("init_ok") int32_t InitOk(void) { return tg_answer("ok", 2); }
