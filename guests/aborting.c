// Test guest: _start calls env.abort with AssemblyScript-style strings, as an AS guest does.
// It must never flush. abort(msg, file, 7, 3): msg "guest gave up on purpose", file "aborting.c".
#include "tandem_guest.h"

TG_EXPORT("_start") void Start(void) {
  // The position passed below is the call's own: line 7, column 3 of this file.
  tg_abort("guest gave up on purpose", "aborting.c", 7, 3);
}
