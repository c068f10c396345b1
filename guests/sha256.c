// SHA-256 (FIPS 180-4), small and dependency-free, for guests and native checkers alike.
// It must never allocate or touch the host ABI, so it compiles anywhere.
#include "sha256.h"

#include <string.h>

static const uint32_t kRoundConstants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t RotateRight(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

// Mixes one 64-byte block into the state.
static void Compress(uint32_t state[8], const uint8_t block[64]) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) {
    w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
           (uint32_t)block[4 * i + 2] << 8 | (uint32_t)block[4 * i + 3];
  }
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = RotateRight(w[i - 15], 7) ^ RotateRight(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = RotateRight(w[i - 2], 17) ^ RotateRight(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t s1 = RotateRight(e, 6) ^ RotateRight(e, 11) ^ RotateRight(e, 25);
    uint32_t choose = (e & f) ^ (~e & g);
    uint32_t t1 = h + s1 + choose + kRoundConstants[i] + w[i];
    uint32_t s0 = RotateRight(a, 2) ^ RotateRight(a, 13) ^ RotateRight(a, 22);
    uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = s0 + majority;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
  state[5] += f;
  state[6] += g;
  state[7] += h;
}

void sha256_init(sha256_ctx *ctx) {
  static const uint32_t kInitialState[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                            0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(ctx->state, kInitialState, sizeof kInitialState);
  ctx->total_bytes = 0;
  ctx->block_len = 0;
}

void sha256_update(sha256_ctx *ctx, const void *data, size_t len) {
  const uint8_t *p = data;
  ctx->total_bytes += len;
  if (ctx->block_len > 0) {
    size_t take = 64 - ctx->block_len < len ? 64 - ctx->block_len : len;
    memcpy(ctx->block + ctx->block_len, p, take);
    ctx->block_len += (uint32_t)take;
    p += take;
    len -= take;
    if (ctx->block_len < 64) return;
    Compress(ctx->state, ctx->block);
    ctx->block_len = 0;
  }
  // Whole blocks straight from the input, without copying.
  for (; len >= 64; p += 64, len -= 64) Compress(ctx->state, p);
  if (len > 0) memcpy(ctx->block, p, len);
  ctx->block_len = (uint32_t)len;
}

void sha256_final(sha256_ctx *ctx, uint8_t out[kSha256Bytes]) {
  uint64_t total_bits = ctx->total_bytes * 8;
  // Padding: 0x80, zeros up to 56 mod 64, then the bit length big-endian.
  static const uint8_t kPadding[64] = {0x80};
  size_t pad_len = ctx->block_len < 56 ? 56 - ctx->block_len : 120 - ctx->block_len;
  sha256_update(ctx, kPadding, pad_len);
  uint8_t length_be[8];
  for (int i = 0; i < 8; ++i) length_be[i] = (uint8_t)(total_bits >> (56 - 8 * i));
  sha256_update(ctx, length_be, 8);
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = (uint8_t)(ctx->state[i] >> 24);
    out[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
    out[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
    out[4 * i + 3] = (uint8_t)ctx->state[i];
  }
}

void sha256(const void *data, size_t len, uint8_t out[kSha256Bytes]) {
  sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, data, len);
  sha256_final(&ctx, out);
}

void sha256d(const void *data, size_t len, uint8_t out[kSha256Bytes]) {
  uint8_t first[kSha256Bytes];
  sha256(data, len, first);
  sha256(first, sizeof first, out);
}
