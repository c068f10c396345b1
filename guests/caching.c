// Test guest: caches every value it reads or writes and never invalidates the cache, like the
// Metashrew guest library. It exists to catch a host that reuses one instance across heights.
// It must never re-read a key it has cached: a stale answer is exactly what the tests look for.
//
// Block payload: pairs, each klen u32 LE ‖ key ‖ vlen u32 LE ‖ value. For each pair it reads the
// key (through the cache), then writes key -> value (to the flush and to the cache). One flush
// at the end, always (an empty payload flushes an empty list).
// View `get` (request: raw key): the cached value if the key is cached, else the stored value
// (then cached); empty when absent.
#include <string.h>

#include "tandem_guest.h"

// Every key this instance has read or written, with the value it saw. An absent key is cached
// too, as an empty value, as Metashrew's cache does.
static tg_map cache = TG_MAP_INIT;

// Returns the value of key: the cached one if any, else the store's (which is then cached).
static const tg_map_entry *CachedGet(const uint8_t *key, uint32_t key_len) {
  const tg_map_entry *cached = tg_map_find(&cache, key, key_len);
  if (cached != NULL) return cached;
  uint32_t value_len;
  uint8_t *value = tg_get(key, key_len, &value_len);
  tg_map_put(&cache, key, key_len, value, value_len);
  tg_bytes_free(value);
  return tg_map_find(&cache, key, key_len);
}

// Reads a u32 LE length and that many bytes at *pos; aborts when the payload is too short.
static const uint8_t *TakeField(const tg_input *input, uint32_t *pos, uint32_t *len) {
  if (input->payload_len - *pos < 4) TG_ABORT("caching: truncated length");
  *len = tg_read_u32le(input->payload + *pos);
  *pos += 4;
  if (input->payload_len - *pos < *len) TG_ABORT("caching: truncated key or value");
  const uint8_t *field = input->payload + *pos;
  *pos += *len;
  return field;
}

TG_EXPORT("_start") void Start(void) {
  tg_input input = tg_load_input();
  tg_flush flush = TG_FLUSH_INIT;
  uint32_t pos = 0;
  while (pos < input.payload_len) {
    uint32_t key_len, value_len;
    const uint8_t *key = TakeField(&input, &pos, &key_len);
    const uint8_t *value = TakeField(&input, &pos, &value_len);
    CachedGet(key, key_len);  // The read the cache remembers, as an indexer would do.
    tg_flush_add(&flush, key, key_len, value, value_len);
    tg_map_put(&cache, key, key_len, value, value_len);
  }
  tg_flush_send(&flush);
  tg_flush_free(&flush);
  tg_input_free(&input);
}

TG_EXPORT("get") int32_t Get(void) {
  tg_input input = tg_load_input();
  const tg_map_entry *entry = CachedGet(input.payload, input.payload_len);
  int32_t answer = tg_answer(entry->value, entry->value_len);
  tg_input_free(&input);
  return answer;
}
