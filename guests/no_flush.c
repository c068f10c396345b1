// Test guest: _start returns without calling __flush, which the host must treat as a failure.
// It must never flush.
#include "tandem_guest.h"

TG_EXPORT("_start") void Start(void) {}
