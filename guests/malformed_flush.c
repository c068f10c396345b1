// Test guest: _start passes __flush bytes that are not a valid KeyValueFlush.
// It must never flush anything valid: the host must reject the block.
//
// The payload is 0x0A 0x10 'a' 'b': field 1 says 16 bytes follow, but only 2 do.
#include "tandem_guest.h"

TG_EXPORT("_start") void Start(void) {
  static const uint8_t kTruncatedField[] = {0x0A, 0x10, 'a', 'b'};
  uint8_t *bytes = tg_bytes_copy(kTruncatedField, sizeof kTruncatedField);
  env_flush(tg_addr(bytes));
  tg_bytes_free(bytes);
}
