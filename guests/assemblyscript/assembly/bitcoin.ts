// A parser for serialized Bitcoin blocks (legacy and segwit transactions), the AssemblyScript twin
// of guests/bitcoin_block.c: the same checks, in the same order, with the same messages and
// offsets. It reads the block in place and never touches the host ABI.
import { Sha256, sha256, sha256d } from "./sha256";

export const HEADER_BYTES = 80;
export const HASH_BYTES = 32;
// The smallest transaction (version, 1-byte counts, locktime), input (outpoint, empty script,
// sequence) and output (value, empty script).
const MIN_TX_BYTES = 10;
const MIN_INPUT_BYTES = 41;
const MIN_OUTPUT_BYTES = 9;

export enum Status {
  Ok,
  TruncatedHeader,
  TruncatedTxCount,
  TruncatedTransaction,
  TruncatedInput,
  TruncatedOutput,
  TruncatedWitness,
  BadSegwitFlag,
  CountTooLarge,
  NoMoreTransactions,
  TrailingBytes,
}

export function statusMessage(status: Status): string {
  switch (status) {
    case Status.Ok: return "ok";
    case Status.TruncatedHeader: return "truncated block header";
    case Status.TruncatedTxCount: return "truncated transaction count";
    case Status.TruncatedTransaction: return "truncated transaction";
    case Status.TruncatedInput: return "truncated transaction input";
    case Status.TruncatedOutput: return "truncated transaction output";
    case Status.TruncatedWitness: return "truncated witness";
    case Status.BadSegwitFlag: return "segwit marker without flag 0x01";
    case Status.CountTooLarge: return "count larger than the bytes left";
    case Status.NoMoreTransactions: return "no more transactions";
    case Status.TrailingBytes: return "bytes after the last transaction";
  }
  return "unknown error";
}

export class TxIn {
  constructor(public prevTxid: usize, public prevVout: u32) {}

  // The null outpoint of a coinbase input: zero txid, vout 0xFFFFFFFF.
  isCoinbase(): bool {
    if (this.prevVout != 0xffffffff) return false;
    for (let i = 0; i < HASH_BYTES; i++) {
      if (load<u8>(this.prevTxid + i) != 0) return false;
    }
    return true;
  }
}

export class TxOut {
  constructor(public valueSat: u64, public script: usize, public scriptLength: i32) {}
}

export class Transaction {
  txid: ArrayBuffer = new ArrayBuffer(0);
  inputs: TxIn[] = [];
  outputs: TxOut[] = [];
}

// Reads one block. A failed read leaves `errorOffset` at the byte where the failing item starts.
export class Block {
  id: ArrayBuffer = new ArrayBuffer(0);
  txCount: u64 = 0;
  errorOffset: i32 = 0;
  position: i32 = 0;
  private txsRead: u64 = 0;
  private varint: u64 = 0;  // The value of the last readVarint.

  constructor(private data: usize, private length: i32) {}

  open(): Status {
    if (this.length < HEADER_BYTES) return Status.TruncatedHeader;
    this.id = sha256d(this.data, HEADER_BYTES);
    this.position = HEADER_BYTES;
    const status = this.readCount(MIN_TX_BYTES, Status.TruncatedTxCount);
    if (status != Status.Ok) {
      this.errorOffset = this.position;
      return status;
    }
    this.txCount = this.varint;
    return Status.Ok;
  }

  // The next transaction into `tx`; NoMoreTransactions after the last (TrailingBytes when bytes
  // follow it).
  next(tx: Transaction): Status {
    if (this.txsRead == this.txCount) {
      return this.remaining() == 0 ? Status.NoMoreTransactions : Status.TrailingBytes;
    }
    const status = this.readTransaction(tx);
    if (status != Status.Ok) {
      this.errorOffset = this.position;
      return status;
    }
    this.txsRead++;
    return Status.Ok;
  }

  private readTransaction(tx: Transaction): Status {
    const start = this.position;
    if (!this.skip(4)) return Status.TruncatedTransaction;
    // Segwit: a 0x00 marker where the input count would be, then flag 0x01.
    let hasWitness = false;
    if (this.remaining() >= 1 && this.byteAt(this.position) == 0) {
      if (this.remaining() < 2) return Status.TruncatedTransaction;
      if (this.byteAt(this.position + 1) != 1) return Status.BadSegwitFlag;
      hasWitness = true;
      this.position += 2;
    }
    const bodyStart = this.position;
    let status = this.readCount(MIN_INPUT_BYTES, Status.TruncatedInput);
    if (status != Status.Ok) return status;
    const inputCount = this.varint;
    const inputs: TxIn[] = [];
    for (let i: u64 = 0; i < inputCount; i++) {
      const outpoint = this.position;
      if (!this.skip(36) || !this.skipVarBytes() || !this.skip(4)) return Status.TruncatedInput;
      inputs.push(new TxIn(this.data + outpoint, load<u32>(this.data + outpoint + 32)));
    }
    status = this.readCount(MIN_OUTPUT_BYTES, Status.TruncatedOutput);
    if (status != Status.Ok) return status;
    const outputCount = this.varint;
    const outputs: TxOut[] = [];
    for (let i: u64 = 0; i < outputCount; i++) {
      const output = this.position;
      if (!this.skip(8)) return Status.TruncatedOutput;
      if (!this.skipVarBytes()) return Status.TruncatedOutput;
      const scriptLength = <i32>this.varint;
      const script = this.data + this.position - scriptLength;
      outputs.push(new TxOut(load<u64>(this.data + output), script, scriptLength));
    }
    const bodyEnd = this.position;
    if (hasWitness) {
      // One witness stack per input: a count of items, each a varint length and bytes.
      for (let i: u64 = 0; i < inputCount; i++) {
        status = this.readCount(1, Status.TruncatedWitness);
        if (status != Status.Ok) return status;
        const items = this.varint;
        for (let j: u64 = 0; j < items; j++) {
          if (!this.skipVarBytes()) return Status.TruncatedWitness;
        }
      }
    }
    const locktime = this.position;
    if (!this.skip(4)) return Status.TruncatedTransaction;
    // The txid covers version, inputs, outputs and locktime: not marker, flag or witnesses.
    const hash = new Sha256();
    hash.update(this.data + start, 4);
    hash.update(this.data + bodyStart, bodyEnd - bodyStart);
    hash.update(this.data + locktime, 4);
    tx.txid = sha256(changetype<usize>(hash.digest()), HASH_BYTES);
    tx.inputs = inputs;
    tx.outputs = outputs;
    return Status.Ok;
  }

  private remaining(): i32 {
    return this.length - this.position;
  }

  private byteAt(offset: i32): u8 {
    return load<u8>(this.data + offset);
  }

  private skip(count: i32): bool {
    if (this.remaining() < count) return false;
    this.position += count;
    return true;
  }

  // Bitcoin's CompactSize into `varint`: one byte below 0xFD, else a 0xFD/0xFE/0xFF prefix and
  // 2/4/8 bytes little-endian. False, reading nothing, when the bytes run out.
  private readVarint(): bool {
    if (this.remaining() < 1) return false;
    const first = this.byteAt(this.position);
    const width = first < 0xfd ? 0 : first == 0xfd ? 2 : first == 0xfe ? 4 : 8;
    if (this.remaining() < 1 + width) return false;
    let value: u64 = first;
    if (width > 0) {
      value = 0;
      for (let i = 0; i < width; i++) {
        value |= (<u64>this.byteAt(this.position + 1 + i)) << (8 * <u64>i);
      }
    }
    this.varint = value;
    this.position += 1 + width;
    return true;
  }

  // A varint length, then that many bytes; `varint` holds the length.
  private skipVarBytes(): bool {
    const start = this.position;
    if (!this.readVarint() || this.varint > <u64>this.remaining()) {
      this.position = start;
      return false;
    }
    this.position += <i32>this.varint;
    return true;
  }

  // A count of items each at least `minItemBytes` long, into `varint`: a count the bytes left
  // cannot hold is CountTooLarge, so a corrupt count fails at once.
  private readCount(minItemBytes: i32, truncated: Status): Status {
    if (!this.readVarint()) return truncated;
    if (this.varint > <u64>(this.remaining() / minItemBytes)) return Status.CountTooLarge;
    return Status.Ok;
  }
}
