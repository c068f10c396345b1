// ABI exerciser for the host tests: every host function, with good and bad arguments.
// It must never keep state between calls, so each test's outcome depends on its input alone.
//
// _start (block): the payload is a list of ops, each
//     op u8 ‖ klen u32 LE ‖ key ‖ vlen u32 LE ‖ value
//   op 1 WRITE:   flushes key -> value at once (an empty value deletes, as for any flush)
//   op 2 READ:    reads key, then flushes key ‖ "/read" -> the value read, or "-" when absent
//   op 3 DELETE:  flushes key -> empty value
//   op 4 LOG:     sends the key to __log as text
//   op 5 BAD_PTR: calls __get_len with the out-of-bounds pointer 0xFFFFFFF0 (fails the block)
//   (the value field is present for every op and ignored where unused)
// After the last op, one more flush, with no pairs. An unknown op or a truncated list aborts.
//
// Views (input height ‖ request):
//   echo                  answers the request bytes
//   height                answers the input height, u32 LE
//   read                  request = key; answers the value, empty when absent
//   get_len               request = key; answers __get_len of it, u32 LE (0 when absent)
//   flush_in_view         flushes "view/wrote" -> "1" (the host must ignore it); answers "flushed"
//   bad_get_pointer       calls __get_len(0xFFFFFFF0): the key's length prefix is out of bounds
//   bad_get_value_pointer request = key (use a key that exists); calls __get(key, 0xFFFFFFF0)
//   bad_flush_pointer     calls __flush with a pointer whose length (64) runs past memory's end
//   bad_log_pointer       calls __log(0xFFFFFFF0)
//   bad_load_input        calls __load_input(0xFFFFFFF0)
//   bad_answer_pointer    returns 0xFFFFFFF0 as its answer pointer
// The bad_* views must fail; none of them returns normally on a correct host (except
// bad_answer_pointer, whose return is the fault).
#include <stdlib.h>
#include <string.h>

#include "tandem_guest.h"

enum {
  kOpWrite = 1,
  kOpRead = 2,
  kOpDelete = 3,
  kOpLog = 4,
  kOpBadPointer = 5,
};

// An address whose length prefix (at addr-4) lies beyond any 32-bit memory the host can map.
static const int32_t kOutOfBounds = (int32_t)0xFFFFFFF0u;

// Reads a u32 LE length and that many bytes at *pos; aborts when the payload is too short.
static const uint8_t *TakeField(const tg_input *input, uint32_t *pos, uint32_t *len) {
  if (input->payload_len - *pos < 4) TG_ABORT("reads_and_writes: truncated op length");
  *len = tg_read_u32le(input->payload + *pos);
  *pos += 4;
  if (input->payload_len - *pos < *len) TG_ABORT("reads_and_writes: truncated op key or value");
  const uint8_t *field = input->payload + *pos;
  *pos += *len;
  return field;
}

static void ReadAndRecord(const uint8_t *key, uint32_t key_len) {
  uint32_t value_len;
  uint8_t *value = tg_get(key, key_len, &value_len);
  uint8_t *read_key = tg_malloc((size_t)key_len + 5);
  memcpy(read_key, key, key_len);
  memcpy(read_key + key_len, "/read", 5);
  if (value != NULL) {
    tg_write(read_key, key_len + 5, value, value_len);
  } else {
    tg_write(read_key, key_len + 5, "-", 1);
  }
  free(read_key);
  tg_bytes_free(value);
}

TG_EXPORT("_start") void Start(void) {
  tg_input input = tg_load_input();
  uint32_t pos = 0;
  while (pos < input.payload_len) {
    uint8_t op = input.payload[pos++];
    uint32_t key_len, value_len;
    const uint8_t *key = TakeField(&input, &pos, &key_len);
    const uint8_t *value = TakeField(&input, &pos, &value_len);
    switch (op) {
      case kOpWrite:
        tg_write(key, key_len, value, value_len);
        break;
      case kOpRead:
        ReadAndRecord(key, key_len);
        break;
      case kOpDelete:
        tg_write(key, key_len, NULL, 0);
        break;
      case kOpLog:
        tg_log_bytes(key, key_len);
        break;
      case kOpBadPointer:
        env_get_len(kOutOfBounds);
        break;
      default:
        TG_ABORT("reads_and_writes: unknown op");
    }
  }
  tg_flush final_flush = TG_FLUSH_INIT;
  tg_flush_send(&final_flush);
  tg_flush_free(&final_flush);
  tg_input_free(&input);
}

// ---------------------------------------------------------------------------------------------
// Views that behave.

TG_EXPORT("echo") int32_t Echo(void) {
  tg_input input = tg_load_input();
  int32_t answer = tg_answer(input.payload, input.payload_len);
  tg_input_free(&input);
  return answer;
}

TG_EXPORT("height") int32_t Height(void) {
  tg_input input = tg_load_input();
  uint8_t answer[4];
  tg_write_u32le(answer, input.height);
  tg_input_free(&input);
  return tg_answer(answer, sizeof answer);
}

TG_EXPORT("read") int32_t Read(void) {
  tg_input input = tg_load_input();
  uint32_t value_len;
  uint8_t *value = tg_get(input.payload, input.payload_len, &value_len);
  int32_t answer = tg_answer(value, value_len);
  tg_bytes_free(value);
  tg_input_free(&input);
  return answer;
}

TG_EXPORT("get_len") int32_t GetLen(void) {
  tg_input input = tg_load_input();
  uint8_t *key = tg_bytes_copy(input.payload, input.payload_len);
  uint8_t answer[4];
  tg_write_u32le(answer, (uint32_t)env_get_len(tg_addr(key)));
  tg_bytes_free(key);
  tg_input_free(&input);
  return tg_answer(answer, sizeof answer);
}

TG_EXPORT("flush_in_view") int32_t FlushInView(void) {
  tg_write("view/wrote", 10, "1", 1);
  return tg_answer("flushed", 7);
}

// ---------------------------------------------------------------------------------------------
// Views that pass bad pointers. Each must fail the call.

TG_EXPORT("bad_get_pointer") int32_t BadGetPointer(void) { return env_get_len(kOutOfBounds); }

TG_EXPORT("bad_get_value_pointer") int32_t BadGetValuePointer(void) {
  tg_input input = tg_load_input();
  uint8_t *key = tg_bytes_copy(input.payload, input.payload_len);
  env_get_len(tg_addr(key));
  env_get(tg_addr(key), kOutOfBounds);
  return tg_answer("", 0);
}

TG_EXPORT("bad_flush_pointer") int32_t BadFlushPointer(void) {
  // A fresh page at the end of memory, which malloc (growing by sbrk at the end) never hands
  // out: its last 8 bytes hold a length of 64 and then 4 bytes of data, so the prefix itself is
  // in bounds and only the data runs past the end. If the memory cannot grow, the current last
  // page serves; the call fails before anything else runs.
  __builtin_wasm_memory_grow(0, 1);
  uintptr_t memory_end = (uintptr_t)__builtin_wasm_memory_size(0) * 65536;
  uint8_t *pointer = (uint8_t *)(memory_end - 4);
  tg_write_u32le(pointer - 4, 64);
  memset(pointer, 0x0A, 4);
  env_flush(tg_addr(pointer));
  return tg_answer("", 0);
}

TG_EXPORT("bad_log_pointer") int32_t BadLogPointer(void) {
  env_log(kOutOfBounds);
  return tg_answer("", 0);
}

TG_EXPORT("bad_load_input") int32_t BadLoadInput(void) {
  env_load_input(kOutOfBounds);
  return tg_answer("", 0);
}

TG_EXPORT("bad_answer_pointer") int32_t BadAnswerPointer(void) { return kOutOfBounds; }
