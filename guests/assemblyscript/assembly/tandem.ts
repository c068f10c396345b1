// tandem's host ABI for AssemblyScript guests: the imports from `env`, and the helpers every guest
// needs (the call's input, reads of committed state, the flush encoder, view answers). It must
// never keep state between calls.
//
// The ABI passes byte strings by pointer with their length in the 4 bytes before the data, which
// is exactly where AssemblyScript keeps an ArrayBuffer's byte length (its header's rtSize): so an
// ArrayBuffer's data pointer is what the host takes and returns, with no copying.

@external("env", "__host_len")
declare function hostLen(): i32;
@external("env", "__load_input")
declare function hostLoadInput(ptr: usize): void;
@external("env", "__get_len")
declare function hostGetLen(keyPtr: usize): i32;
@external("env", "__get")
declare function hostGet(keyPtr: usize, valuePtr: usize): void;
@external("env", "__flush")
declare function hostFlush(ptr: usize): void;
// `abort` needs no declaration: AssemblyScript's own abort() imports env.abort(message, file,
// line, column), the host ABI's signature. There is deliberately no env.__log import.

export function dataOf(buffer: ArrayBuffer): usize {
  return changetype<usize>(buffer);
}

// The call's input: the height the host gives (a block's, or the one a view answers at), then the
// payload (the block, or the view's request).
export class Input {
  constructor(public height: u32, public payload: ArrayBuffer) {}
}

export function loadInput(): Input {
  const length = hostLen();
  if (length < 4) abort("host input shorter than its 4-byte height");
  const raw = new ArrayBuffer(length);
  hostLoadInput(dataOf(raw));
  return new Input(load<u32>(dataOf(raw)), raw.slice(4));
}

// The committed value at `key` (as of the block's parent, or the view's height); null when absent
// (a deleted key reads as absent too).
export function get(key: ArrayBuffer): ArrayBuffer | null {
  const length = hostGetLen(dataOf(key));
  if (length == 0) return null;
  const value = new ArrayBuffer(length);
  hostGet(dataOf(key), dataOf(value));
  return value;
}

// Collects key/value pairs and sends them in one __flush, encoded as the protobuf message
// KeyValueFlush { repeated bytes list = 1; } with keys and values alternating.
export class Flush {
  private items: ArrayBuffer[] = [];

  add(key: ArrayBuffer, value: ArrayBuffer): void {
    this.items.push(key);
    this.items.push(value);
  }

  send(): void {
    let size = 0;
    for (let i = 0; i < this.items.length; i++) {
      const length = this.items[i].byteLength;
      size += 1 + varintSize(length) + length;
    }
    const message = new ArrayBuffer(size);
    let at = dataOf(message);
    for (let i = 0; i < this.items.length; i++) {
      const item = this.items[i];
      store<u8>(at, 0x0a);  // Field 1, length-delimited.
      at = writeVarint(at + 1, item.byteLength);
      memory.copy(at, dataOf(item), item.byteLength);
      at += item.byteLength;
    }
    hostFlush(dataOf(message));
    this.items = [];
  }
}

function varintSize(value: u32): i32 {
  let size = 1;
  while (value >= 0x80) {
    value >>= 7;
    size++;
  }
  return size;
}

function writeVarint(at: usize, value: u32): usize {
  while (value >= 0x80) {
    store<u8>(at++, (value & 0x7f) | 0x80);
    value >>= 7;
  }
  store<u8>(at++, value);
  return at;
}

// What a view export returns: a pointer whose 4 preceding bytes hold the answer's length. An
// absent value answers empty.
export function answer(value: ArrayBuffer | null): usize {
  return dataOf(value === null ? new ArrayBuffer(0) : value);
}

// Little-endian integers in byte buffers.
export function readU32(buffer: ArrayBuffer, offset: i32): u32 {
  return load<u32>(dataOf(buffer) + offset);
}
export function readU64(buffer: ArrayBuffer, offset: i32): u64 {
  return load<u64>(dataOf(buffer) + offset);
}
export function writeU32(buffer: ArrayBuffer, offset: i32, value: u32): void {
  store<u32>(dataOf(buffer) + offset, value);
}
export function writeU64(buffer: ArrayBuffer, offset: i32, value: u64): void {
  store<u64>(dataOf(buffer) + offset, value);
}

// `parts` one after the other in a new buffer.
export function concat(parts: ArrayBuffer[]): ArrayBuffer {
  let size = 0;
  for (let i = 0; i < parts.length; i++) size += parts[i].byteLength;
  const out = new ArrayBuffer(size);
  let at = dataOf(out);
  for (let i = 0; i < parts.length; i++) {
    memory.copy(at, dataOf(parts[i]), parts[i].byteLength);
    at += parts[i].byteLength;
  }
  return out;
}

// The bytes of an ASCII string (key prefixes).
export function ascii(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}
