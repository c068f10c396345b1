// Test guest: _start executes `unreachable`, a deterministic trap.
// It must never flush: the trap is the only thing it does.
#include "tandem_guest.h"

TG_EXPORT("_start") void Start(void) { __builtin_trap(); }
