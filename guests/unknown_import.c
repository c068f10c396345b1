// Test guest: imports env.__bogus_host_function, which is not in the host ABI.
// It must never load: the host refuses it at validation, naming the import.
#include "tandem_guest.h"

TG_HOST_IMPORT("__bogus_host_function") void BogusHostFunction(void);

TG_EXPORT("_start") void Start(void) {
  BogusHostFunction();
  tg_flush empty = TG_FLUSH_INIT;
  tg_flush_send(&empty);
  tg_flush_free(&empty);
}
