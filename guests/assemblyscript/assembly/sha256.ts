// SHA-256 (FIPS 180-4) over guest memory, for txids, block ids and script keys. No state outlives
// a call.

const K: StaticArray<u32> = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

// An incremental SHA-256: update() any number of times, then digest() once.
export class Sha256 {
  private h: StaticArray<u32> = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ];
  private block: ArrayBuffer = new ArrayBuffer(64);
  private w: StaticArray<u32> = new StaticArray<u32>(64);
  private filled: i32 = 0;
  private total: u64 = 0;

  update(data: usize, length: i32): void {
    this.total += <u64>length;
    const block = changetype<usize>(this.block);
    while (length > 0) {
      const take = min(64 - this.filled, length);
      memory.copy(block + this.filled, data, take);
      this.filled += take;
      data += take;
      length -= take;
      if (this.filled == 64) {
        this.compress();
        this.filled = 0;
      }
    }
  }

  digest(): ArrayBuffer {
    const bits = this.total << 3;
    const block = changetype<usize>(this.block);
    store<u8>(block + this.filled, 0x80);
    this.filled++;
    if (this.filled > 56) {
      memory.fill(block + this.filled, 0, 64 - this.filled);
      this.compress();
      this.filled = 0;
    }
    memory.fill(block + this.filled, 0, 56 - this.filled);
    store<u64>(block + 56, bswap<u64>(bits));
    this.compress();
    const out = new ArrayBuffer(32);
    for (let i = 0; i < 8; i++) store<u32>(changetype<usize>(out) + (i << 2), bswap<u32>(this.h[i]));
    return out;
  }

  private compress(): void {
    const block = changetype<usize>(this.block);
    const w = this.w;
    for (let i = 0; i < 16; i++) w[i] = bswap<u32>(load<u32>(block + (i << 2)));
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15];
      const b = w[i - 2];
      const s0 = rotr<u32>(a, 7) ^ rotr<u32>(a, 18) ^ (a >>> 3);
      const s1 = rotr<u32>(b, 17) ^ rotr<u32>(b, 19) ^ (b >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    const h = this.h;
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (let i = 0; i < 64; i++) {
      const s1 = rotr<u32>(e, 6) ^ rotr<u32>(e, 11) ^ rotr<u32>(e, 25);
      const choice = (e & f) ^ (~e & g);
      const t1 = k + s1 + choice + K[i] + w[i];
      const s0 = rotr<u32>(a, 2) ^ rotr<u32>(a, 13) ^ rotr<u32>(a, 22);
      const majority = (a & b) ^ (a & c) ^ (b & c);
      const t2 = s0 + majority;
      k = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
  }
}

export function sha256(data: usize, length: i32): ArrayBuffer {
  const hash = new Sha256();
  hash.update(data, length);
  return hash.digest();
}

// Bitcoin's double SHA-256.
export function sha256d(data: usize, length: i32): ArrayBuffer {
  const first = sha256(data, length);
  return sha256(changetype<usize>(first), 32);
}
