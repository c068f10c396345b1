// SHA-256 (FIPS 180-4), small and dependency-free, for guests and native checkers alike.
// It must never allocate or touch the host ABI, so it compiles anywhere.
#pragma once

#include <stddef.h>
#include <stdint.h>

enum { kSha256Bytes = 32 };

// A hash in progress. Feed it with sha256_update any number of times, then sha256_final.
typedef struct {
  uint32_t state[8];
  uint64_t total_bytes;
  uint8_t block[64];
  uint32_t block_len;  // Bytes waiting in `block`.
} sha256_ctx;

void sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const void *data, size_t len);
// Writes the 32-byte digest to out. The context must be initialized again before reuse.
void sha256_final(sha256_ctx *ctx, uint8_t out[kSha256Bytes]);

// One-shot SHA-256 of data[0..len).
void sha256(const void *data, size_t len, uint8_t out[kSha256Bytes]);

// SHA-256 of the SHA-256 of data (Bitcoin's hash for block ids and txids).
void sha256d(const void *data, size_t len, uint8_t out[kSha256Bytes]);
