// The guest side of tandem's host ABI: the env imports and the helpers every C guest shares.
// It must never import anything but the host ABI (no WASI): modules importing more are refused.
//
// The host ABI passes "pointers" in the AssemblyScript ArrayBuffer layout: the data's length is a
// u32 little-endian stored in the 4 bytes just before the pointer. Buffers made by tg_bytes_alloc
// have that layout, so they can be handed to the host as they are.
//
// Memory: every helper that allocates says so, and who frees. When an allocation fails the helpers
// abort the call ("out of memory"), which the host reports as a deterministic failure: memory.grow
// fails at the same cap on every node. Guests that must survive a failed allocation (memory_stress)
// call malloc themselves.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ---------------------------------------------------------------------------------------------
// Raw host imports (module "env"). Prefer the helpers below; these exist for guests that test the
// host with deliberately bad arguments. Pointers are i32 addresses in linear memory.

// Declares a function imported from the host's module "env" under `name`.
#define TG_HOST_IMPORT(name) __attribute__((import_module("env"), import_name(name)))

TG_HOST_IMPORT("__host_len") int32_t env_host_len(void);
TG_HOST_IMPORT("__load_input") void env_load_input(int32_t ptr);
TG_HOST_IMPORT("__get_len") int32_t env_get_len(int32_t key_ptr);
TG_HOST_IMPORT("__get") void env_get(int32_t key_ptr, int32_t value_ptr);
TG_HOST_IMPORT("__flush") void env_flush(int32_t ptr);
TG_HOST_IMPORT("__log") void env_log(int32_t ptr);
TG_HOST_IMPORT("abort") void env_abort(int32_t msg, int32_t file, int32_t line, int32_t col);

// Exports a function to the host under `name` (`_start`, a view, an init call).
#define TG_EXPORT(name) __attribute__((export_name(name)))

// The i32 address the host sees for a guest pointer (wasm32 pointers are 32-bit).
static inline int32_t tg_addr(const void *ptr) { return (int32_t)(uintptr_t)ptr; }

// ---------------------------------------------------------------------------------------------
// Giving up.

// Calls the host's `abort` with `message` and `file` converted to AssemblyScript strings
// (UTF-16LE; bytes above 0x7F are passed through as Latin-1), so the host can show them. Never
// returns: the host fails the call. Uses a static buffer, so it works even when memory is
// exhausted; messages longer than 500 characters are cut.
__attribute__((noreturn)) void tg_abort(const char *message, const char *file, int line, int col);

// tg_abort with the current file's name (not its path: a module must not carry the build
// machine's folders, which would also make its bytes, and so its SHA-256, differ between builds)
// and line.
#define TG_ABORT(message) tg_abort((message), __FILE_NAME__, __LINE__, 0)

// ---------------------------------------------------------------------------------------------
// Length-prefixed buffers.

// Allocates n bytes preceded by their u32 LE length; returns the data pointer (length at ptr-4).
// Aborts when memory is exhausted. The caller frees with tg_bytes_free.
uint8_t *tg_bytes_alloc(uint32_t n);

// Allocates a length-prefixed copy of data[0..n). Aborts when memory is exhausted.
uint8_t *tg_bytes_copy(const void *data, uint32_t n);

// The length stored before a buffer from tg_bytes_alloc (or one the host returned).
static inline uint32_t tg_bytes_len(const uint8_t *bytes) {
  const uint8_t *p = bytes - 4;
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// Frees a buffer from tg_bytes_alloc / tg_bytes_copy / tg_get. NULL is allowed.
void tg_bytes_free(uint8_t *bytes);

// ---------------------------------------------------------------------------------------------
// Input.

// What the host passed to this call: the height, then the payload (block bytes, view request or
// init payload).
typedef struct {
  uint32_t height;
  const uint8_t *payload;  // Points into `raw`; valid until tg_input_free.
  uint32_t payload_len;
  uint8_t *raw;  // Owns the whole input (height included).
} tg_input;

// Loads the input with __host_len / __load_input. Aborts if the host reports less than 4 bytes
// or memory is exhausted. The caller frees with tg_input_free (or keeps it for the whole call).
tg_input tg_load_input(void);
void tg_input_free(tg_input *input);

// ---------------------------------------------------------------------------------------------
// Reads.

// Reads the value at key[0..key_len). Returns a length-prefixed buffer (free with tg_bytes_free)
// and sets *value_len; returns NULL with *value_len = 0 when the key is absent or deleted (the
// host does not distinguish a deleted key from one never written).
uint8_t *tg_get(const void *key, uint32_t key_len, uint32_t *value_len);

// ---------------------------------------------------------------------------------------------
// Writes: a growable KeyValueFlush encoder.
//
// Encodes protobuf `KeyValueFlush { repeated bytes list = 1; }`: for each pair, the key and then
// the value as field 1 (tag 0x0A, varint length, bytes). An empty value deletes the key.

typedef struct {
  uint8_t *base;   // malloc'd; the 4-byte length prefix, then the encoded message. NULL if unused.
  uint32_t len;    // Encoded message bytes (without the prefix).
  uint32_t cap;    // Message bytes available after the prefix.
  uint32_t pairs;  // Pairs added since the last tg_flush_send.
} tg_flush;

// An empty encoder; it allocates on first use.
#define TG_FLUSH_INIT \
  { NULL, 0, 0, 0 }

// Appends one key/value pair. Aborts when memory is exhausted.
void tg_flush_add(tg_flush *flush, const void *key, uint32_t key_len, const void *value,
                  uint32_t value_len);

// Sends the pairs added so far with one __flush call (zero pairs is a valid, empty flush), then
// empties the encoder so it can be reused.
void tg_flush_send(tg_flush *flush);

// Releases the encoder's buffer. Unsent pairs are dropped.
void tg_flush_free(tg_flush *flush);

// Flushes one pair at once (a convenience for guests that write little).
void tg_write(const void *key, uint32_t key_len, const void *value, uint32_t value_len);

// ---------------------------------------------------------------------------------------------
// Log and view answers.

// Sends text[0..len) to the server log as UTF-8.
void tg_log_bytes(const void *text, uint32_t len);
// Sends a NUL-terminated string to the server log.
void tg_log(const char *text);

// Returns the i32 a view or init export gives back: a length-prefixed copy of data[0..n). The
// copy lives until the next tg_answer call, which frees it: by then the host has read it (it
// reads the answer as soon as the export returns), so answering leaks nothing across calls.
int32_t tg_answer(const void *data, uint32_t n);

// ---------------------------------------------------------------------------------------------
// Little helpers for the guests' byte formats.

static inline uint32_t tg_read_u32le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t tg_read_u64le(const uint8_t *p) {
  return (uint64_t)tg_read_u32le(p) | (uint64_t)tg_read_u32le(p + 4) << 32;
}
static inline void tg_write_u32le(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static inline void tg_write_u64le(uint8_t *p, uint64_t v) {
  tg_write_u32le(p, (uint32_t)v);
  tg_write_u32le(p + 4, (uint32_t)(v >> 32));
}
static inline void tg_write_u32be(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

// malloc that aborts the call instead of returning NULL.
void *tg_malloc(size_t n);

// ---------------------------------------------------------------------------------------------
// An insertion-ordered map from byte strings to byte strings.
//
// For guests that keep values in memory: a read cache (caching.c) or the writes of the block in
// progress (bitcoin_indexer.c). Keys and values are copied in; iteration follows first-insertion
// order, so anything built from a walk (a flush) is deterministic. Aborts when memory is exhausted.

typedef struct {
  uint8_t *key;
  uint32_t key_len;
  uint8_t *value;  // NULL when value_len is 0.
  uint32_t value_len;
} tg_map_entry;

typedef struct {
  tg_map_entry *entries;  // In first-insertion order.
  uint32_t count;
  uint32_t entries_cap;
  uint32_t *slots;     // Open-addressing table of entry index + 1; 0 marks an empty slot.
  uint32_t slots_cap;  // A power of two, at least twice count.
} tg_map;

#define TG_MAP_INIT \
  { NULL, 0, 0, NULL, 0 }

// Returns the entry for key, or NULL. The pointer is valid until the next tg_map_put or clear.
tg_map_entry *tg_map_find(const tg_map *map, const void *key, uint32_t key_len);

// Sets key to value (replacing any earlier value; the entry keeps its place in the order).
void tg_map_put(tg_map *map, const void *key, uint32_t key_len, const void *value,
                uint32_t value_len);

// Removes every entry and frees the memory.
void tg_map_clear(tg_map *map);
