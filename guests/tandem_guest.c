// The guest side of tandem's host ABI: buffers, input, reads, the flush encoder, log, answers.
// It must never call into WASI (no stdio, no clocks): only malloc, free and the string functions.
#include "tandem_guest.h"

#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Giving up.

// Room for the AssemblyScript strings of one abort: a u32 length then UTF-16 code units. Static,
// so that "out of memory" can still be reported.
enum { kAbortTextUnits = 500 };
static uint32_t abort_message_storage[1 + kAbortTextUnits / 2];
static uint32_t abort_file_storage[1 + kAbortTextUnits / 2];

// Writes text as an AssemblyScript string into storage; returns the string pointer (after the
// length), or 0 for NULL text, as AssemblyScript does.
static int32_t EncodeAssemblyScriptString(const char *text, uint32_t *storage) {
  if (text == NULL) return 0;
  uint8_t *units = (uint8_t *)(storage + 1);
  uint32_t count = 0;
  for (; text[count] != '\0' && count < kAbortTextUnits; ++count) {
    units[2 * count] = (uint8_t)text[count];
    units[2 * count + 1] = 0;
  }
  tg_write_u32le((uint8_t *)storage, 2 * count);  // AssemblyScript stores the length in bytes.
  return tg_addr(units);
}

void tg_abort(const char *message, const char *file, int line, int col) {
  env_abort(EncodeAssemblyScriptString(message, abort_message_storage),
            EncodeAssemblyScriptString(file, abort_file_storage), line, col);
  // The host never returns from abort; if a broken host did, trapping still fails the call.
  __builtin_trap();
}

void *tg_malloc(size_t n) {
  void *p = malloc(n == 0 ? 1 : n);
  if (p == NULL) TG_ABORT("out of memory");
  return p;
}

// ---------------------------------------------------------------------------------------------
// Length-prefixed buffers.

uint8_t *tg_bytes_alloc(uint32_t n) {
  if (n > UINT32_MAX - 4) TG_ABORT("buffer too large");
  uint8_t *base = tg_malloc((size_t)n + 4);
  tg_write_u32le(base, n);
  return base + 4;
}

uint8_t *tg_bytes_copy(const void *data, uint32_t n) {
  uint8_t *bytes = tg_bytes_alloc(n);
  if (n > 0) memcpy(bytes, data, n);
  return bytes;
}

void tg_bytes_free(uint8_t *bytes) {
  if (bytes != NULL) free(bytes - 4);
}

// ---------------------------------------------------------------------------------------------
// Input.

tg_input tg_load_input(void) {
  int32_t total = env_host_len();
  if (total < 4) TG_ABORT("host input shorter than its 4-byte height");
  // __load_input writes raw bytes (no length prefix of its own), so any buffer will do.
  uint8_t *raw = tg_malloc((size_t)(uint32_t)total);
  env_load_input(tg_addr(raw));
  tg_input input = {
      .height = tg_read_u32le(raw),
      .payload = raw + 4,
      .payload_len = (uint32_t)total - 4,
      .raw = raw,
  };
  return input;
}

void tg_input_free(tg_input *input) {
  free(input->raw);
  input->raw = NULL;
  input->payload = NULL;
  input->payload_len = 0;
}

// ---------------------------------------------------------------------------------------------
// Reads.

uint8_t *tg_get(const void *key, uint32_t key_len, uint32_t *value_len) {
  uint8_t *key_bytes = tg_bytes_copy(key, key_len);
  int32_t len = env_get_len(tg_addr(key_bytes));
  uint8_t *value = NULL;
  if (len > 0) {
    value = tg_bytes_alloc((uint32_t)len);
    env_get(tg_addr(key_bytes), tg_addr(value));
  }
  tg_bytes_free(key_bytes);
  *value_len = len > 0 ? (uint32_t)len : 0;
  return value;
}

// ---------------------------------------------------------------------------------------------
// Writes.

// Makes room for `extra` more message bytes, doubling so that adding n pairs costs O(n) copies.
static void FlushReserve(tg_flush *flush, uint32_t extra) {
  if (flush->cap - flush->len >= extra && flush->base != NULL) return;
  uint64_t wanted = (uint64_t)flush->len + extra;
  uint64_t cap = flush->cap < 256 ? 256 : flush->cap;
  while (cap < wanted) cap *= 2;
  if (cap > UINT32_MAX - 4) TG_ABORT("flush too large");
  uint8_t *base = realloc(flush->base, (size_t)cap + 4);
  if (base == NULL) TG_ABORT("out of memory");
  flush->base = base;
  flush->cap = (uint32_t)cap;
}

// Appends one field-1 bytes value: tag, varint length, the bytes. Room must be reserved.
static void FlushAppendField(tg_flush *flush, const void *data, uint32_t len) {
  uint8_t *out = flush->base + 4 + flush->len;
  *out++ = 0x0A;  // Field 1, wire type 2 (length-delimited).
  uint32_t rest = len;
  while (rest >= 0x80) {
    *out++ = (uint8_t)(rest | 0x80);
    rest >>= 7;
  }
  *out++ = (uint8_t)rest;
  if (len > 0) memcpy(out, data, len);
  out += len;
  flush->len = (uint32_t)(out - (flush->base + 4));
}

void tg_flush_add(tg_flush *flush, const void *key, uint32_t key_len, const void *value,
                  uint32_t value_len) {
  // Each field needs 1 tag byte and at most 5 varint bytes.
  uint64_t needed = (uint64_t)key_len + value_len + 12;
  if (needed > UINT32_MAX) TG_ABORT("flush too large");
  FlushReserve(flush, (uint32_t)needed);
  FlushAppendField(flush, key, key_len);
  FlushAppendField(flush, value, value_len);
  flush->pairs++;
}

void tg_flush_send(tg_flush *flush) {
  FlushReserve(flush, 0);  // An empty flush still needs its length prefix.
  tg_write_u32le(flush->base, flush->len);
  env_flush(tg_addr(flush->base + 4));
  flush->len = 0;
  flush->pairs = 0;
}

void tg_flush_free(tg_flush *flush) {
  free(flush->base);
  flush->base = NULL;
  flush->len = flush->cap = flush->pairs = 0;
}

void tg_write(const void *key, uint32_t key_len, const void *value, uint32_t value_len) {
  tg_flush flush = TG_FLUSH_INIT;
  tg_flush_add(&flush, key, key_len, value, value_len);
  tg_flush_send(&flush);
  tg_flush_free(&flush);
}

// ---------------------------------------------------------------------------------------------
// Log and answers.

void tg_log_bytes(const void *text, uint32_t len) {
  uint8_t *bytes = tg_bytes_copy(text, len);
  env_log(tg_addr(bytes));
  tg_bytes_free(bytes);
}

void tg_log(const char *text) { tg_log_bytes(text, (uint32_t)strlen(text)); }

// The answer of the previous view or init call; freed once the next answer is made.
static uint8_t *previous_answer;

int32_t tg_answer(const void *data, uint32_t n) {
  tg_bytes_free(previous_answer);
  previous_answer = tg_bytes_copy(data, n);
  return tg_addr(previous_answer);
}

// ---------------------------------------------------------------------------------------------
// The insertion-ordered map.

// FNV-1a: simple and good enough for keys that are mostly hashes already.
static uint32_t HashBytes(const void *data, uint32_t len) {
  const uint8_t *p = data;
  uint32_t hash = 2166136261u;
  for (uint32_t i = 0; i < len; ++i) hash = (hash ^ p[i]) * 16777619u;
  return hash;
}

// Returns the slot holding key, or the empty slot where it would go.
static uint32_t MapSlot(const tg_map *map, const void *key, uint32_t key_len) {
  uint32_t mask = map->slots_cap - 1;
  uint32_t slot = HashBytes(key, key_len) & mask;
  for (;;) {
    uint32_t index = map->slots[slot];
    if (index == 0) return slot;
    const tg_map_entry *entry = &map->entries[index - 1];
    if (entry->key_len == key_len && memcmp(entry->key, key, key_len) == 0) return slot;
    slot = (slot + 1) & mask;
  }
}

tg_map_entry *tg_map_find(const tg_map *map, const void *key, uint32_t key_len) {
  if (map->count == 0) return NULL;
  uint32_t index = map->slots[MapSlot(map, key, key_len)];
  return index == 0 ? NULL : &map->entries[index - 1];
}

// Keeps the slot table at most half full, so probes stay short.
static void MapGrowSlots(tg_map *map) {
  if (map->slots_cap != 0 && (uint64_t)(map->count + 1) * 2 <= map->slots_cap) return;
  uint32_t cap = map->slots_cap == 0 ? 64 : map->slots_cap * 2;
  free(map->slots);
  map->slots = tg_malloc((size_t)cap * sizeof(uint32_t));
  memset(map->slots, 0, (size_t)cap * sizeof(uint32_t));
  map->slots_cap = cap;
  for (uint32_t i = 0; i < map->count; ++i) {
    const tg_map_entry *entry = &map->entries[i];
    map->slots[MapSlot(map, entry->key, entry->key_len)] = i + 1;
  }
}

static uint8_t *CopyOrNull(const void *data, uint32_t len) {
  if (len == 0) return NULL;
  uint8_t *copy = tg_malloc(len);
  memcpy(copy, data, len);
  return copy;
}

void tg_map_put(tg_map *map, const void *key, uint32_t key_len, const void *value,
                uint32_t value_len) {
  tg_map_entry *existing = tg_map_find(map, key, key_len);
  if (existing != NULL) {
    free(existing->value);
    existing->value = CopyOrNull(value, value_len);
    existing->value_len = value_len;
    return;
  }
  MapGrowSlots(map);
  if (map->count == map->entries_cap) {
    uint32_t cap = map->entries_cap == 0 ? 32 : map->entries_cap * 2;
    tg_map_entry *entries = realloc(map->entries, (size_t)cap * sizeof(tg_map_entry));
    if (entries == NULL) TG_ABORT("out of memory");
    map->entries = entries;
    map->entries_cap = cap;
  }
  tg_map_entry *entry = &map->entries[map->count];
  entry->key = CopyOrNull(key, key_len);
  entry->key_len = key_len;
  entry->value = CopyOrNull(value, value_len);
  entry->value_len = value_len;
  map->slots[MapSlot(map, key, key_len)] = ++map->count;
}

void tg_map_clear(tg_map *map) {
  for (uint32_t i = 0; i < map->count; ++i) {
    free(map->entries[i].key);
    free(map->entries[i].value);
  }
  free(map->entries);
  free(map->slots);
  *map = (tg_map)TG_MAP_INIT;
}
