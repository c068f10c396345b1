// tandem's example indexer in AssemblyScript: the same index as guests/bitcoin_indexer.c (the same
// keys and values for every block, so both give the same state roots), built with the npm
// `assemblyscript` compiler. It keeps no state in memory across calls: everything it knows lives
// in the store.
//
// Keys written by each block (integers little-endian unless marked BE):
//   block/    height u32 BE               -> tx_count u32, output_count u32, output_sum_sat u64,
//                                            block id (32 bytes, internal byte order)
//   outpoint/ txid(32) vout u32           -> value_sat u64 ‖ scriptPubKey
//   spend/    prev txid(32) prev vout u32 -> spending txid(32) ‖ input index u32
//   script/   SHA-256(scriptPubKey)       -> received_sat u64 ‖ output_count u64 ‖ spent_sat u64
//
// What AssemblyScript adds to the module, on purpose (tandem's engine tests each): a start
// section (the runtime and the globals below are set up at instantiation), bulk-memory
// instructions (memory.copy / memory.fill), a memory with no maximum (the host sets one: the
// cap), the runtime's exports (__new, __pin, __unpin, __collect, taking parameters, which the
// host refuses as views), and no env.__log import.
import { Block, HASH_BYTES, Status, Transaction, statusMessage } from "./bitcoin";
import { sha256 } from "./sha256";
import {
  Flush,
  Input,
  answer,
  ascii,
  concat,
  dataOf,
  get,
  loadInput,
  readU32,
  readU64,
  writeU32,
  writeU64,
} from "./tandem";

const BLOCK_PREFIX = ascii("block/");
const OUTPOINT_PREFIX = ascii("outpoint/");
const SPEND_PREFIX = ascii("spend/");
const SCRIPT_PREFIX = ascii("script/");
const OUTPOINT_BYTES = HASH_BYTES + 4;
const SUMMARY_BYTES = 4 + 4 + 8 + HASH_BYTES;
const SCRIPT_TOTALS_BYTES = 3 * 8;

// ---------------------------------------------------------------------------------------------
// Keys.

function blockKey(height: u32): ArrayBuffer {
  const heightBe = new ArrayBuffer(4);
  writeU32(heightBe, 0, bswap<u32>(height));
  return concat([BLOCK_PREFIX, heightBe]);
}

function outpointKey(prefix: ArrayBuffer, txid: usize, vout: u32): ArrayBuffer {
  const outpoint = new ArrayBuffer(OUTPOINT_BYTES);
  memory.copy(dataOf(outpoint), txid, HASH_BYTES);
  writeU32(outpoint, HASH_BYTES, vout);
  return concat([prefix, outpoint]);
}

function scriptKey(script: usize, length: i32): ArrayBuffer {
  return concat([SCRIPT_PREFIX, sha256(script, length)]);
}

// ---------------------------------------------------------------------------------------------
// State: the store as of the previous block, overlaid with this block's writes. The host shows a
// block its own writes only once flushed, so the block's writes stay here, reads go through them,
// and one flush at the end sends them all (each key once, with its final value, in first-write
// order). Emptied when the block ends.

class Overlay {
  private index: Map<string, i32> = new Map<string, i32>();
  private keys: ArrayBuffer[] = [];
  private values: ArrayBuffer[] = [];

  read(key: ArrayBuffer): ArrayBuffer | null {
    const name = mapKey(key);
    if (this.index.has(name)) return this.values[this.index.get(name)];
    return get(key);
  }

  write(key: ArrayBuffer, value: ArrayBuffer): void {
    const name = mapKey(key);
    if (this.index.has(name)) {
      this.values[this.index.get(name)] = value;
      return;
    }
    this.index.set(name, this.keys.length);
    this.keys.push(key);
    this.values.push(value);
  }

  // One __flush with every write, even none (the host requires a flush per block); then empty.
  flush(): void {
    const flush = new Flush();
    for (let i = 0; i < this.keys.length; i++) flush.add(this.keys[i], this.values[i]);
    flush.send();
    this.index.clear();
    this.keys = [];
    this.values = [];
  }
}

// A Map key for a byte string: one UTF-16 code unit per byte, so every byte string maps to its own
// string.
function mapKey(bytes: ArrayBuffer): string {
  const length = bytes.byteLength;
  const text = changetype<string>(__new(length << 1, idof<string>()));
  for (let i = 0; i < length; i++) {
    store<u16>(changetype<usize>(text) + (<usize>i << 1), load<u8>(dataOf(bytes) + i));
  }
  return text;
}

const blockWrites = new Overlay();

// Adds to the running totals of one output script: reads them (overlay or store), writes them back.
function addToScriptTotals(key: ArrayBuffer, receivedSat: u64, outputs: u64, spentSat: u64): void {
  const totals = new ArrayBuffer(SCRIPT_TOTALS_BYTES);
  const old = blockWrites.read(key);
  if (old !== null && old.byteLength == SCRIPT_TOTALS_BYTES) {
    memory.copy(dataOf(totals), dataOf(old), SCRIPT_TOTALS_BYTES);
  }
  writeU64(totals, 0, readU64(totals, 0) + receivedSat);
  writeU64(totals, 8, readU64(totals, 8) + outputs);
  writeU64(totals, 16, readU64(totals, 16) + spentSat);
  blockWrites.write(key, totals);
}

// ---------------------------------------------------------------------------------------------
// Indexing one block.

function abortMalformed(status: Status, offset: i32): void {
  abort(`malformed block: ${statusMessage(status)} at byte ${offset}`, "index.ts");
}

// Records who spent each outpoint, and credits spent_sat of the script that owned it when the
// outpoint was indexed (outputs from before the indexed range are unknown and only recorded).
function indexInputs(tx: Transaction): void {
  for (let index = 0; index < tx.inputs.length; index++) {
    const input = tx.inputs[index];
    if (input.isCoinbase()) continue;
    const spender = new ArrayBuffer(HASH_BYTES + 4);
    memory.copy(dataOf(spender), dataOf(tx.txid), HASH_BYTES);
    writeU32(spender, HASH_BYTES, <u32>index);
    blockWrites.write(outpointKey(SPEND_PREFIX, input.prevTxid, input.prevVout), spender);

    const spent = blockWrites.read(outpointKey(OUTPOINT_PREFIX, input.prevTxid, input.prevVout));
    if (spent !== null && spent.byteLength >= 8) {
      const key = scriptKey(dataOf(spent) + 8, spent.byteLength - 8);
      addToScriptTotals(key, 0, 0, readU64(spent, 0));
    }
  }
}

// Records each output by outpoint and credits its script. Returns the sum of the values.
function indexOutputs(tx: Transaction): u64 {
  let sumSat: u64 = 0;
  for (let vout = 0; vout < tx.outputs.length; vout++) {
    const output = tx.outputs[vout];
    const value = new ArrayBuffer(8 + output.scriptLength);
    writeU64(value, 0, output.valueSat);
    memory.copy(dataOf(value) + 8, output.script, output.scriptLength);
    blockWrites.write(outpointKey(OUTPOINT_PREFIX, dataOf(tx.txid), <u32>vout), value);
    addToScriptTotals(scriptKey(output.script, output.scriptLength), output.valueSat, 1, 0);
    sumSat += output.valueSat;
  }
  return sumSat;
}

// Input: height ‖ serialized block. Writes the keys listed at the top of the file.
export function _start(): void {
  const input = loadInput();
  const block = new Block(dataOf(input.payload), input.payload.byteLength);
  let status = block.open();
  if (status != Status.Ok) abortMalformed(status, block.errorOffset);

  let txCount: u32 = 0;
  let outputCount: u32 = 0;
  let outputSumSat: u64 = 0;
  const tx = new Transaction();
  while ((status = block.next(tx)) == Status.Ok) {
    // Inputs first: a transaction may spend an output of an earlier transaction in this block,
    // which the overlay already holds.
    indexInputs(tx);
    outputSumSat += indexOutputs(tx);
    outputCount += <u32>tx.outputs.length;
    txCount++;
  }
  if (status != Status.NoMoreTransactions) {
    abortMalformed(status, status == Status.TrailingBytes ? block.position : block.errorOffset);
  }

  const summary = new ArrayBuffer(SUMMARY_BYTES);
  writeU32(summary, 0, txCount);
  writeU32(summary, 4, outputCount);
  writeU64(summary, 8, outputSumSat);
  memory.copy(dataOf(summary) + 16, dataOf(block.id), HASH_BYTES);
  blockWrites.write(blockKey(input.height), summary);
  blockWrites.flush();
}

// ---------------------------------------------------------------------------------------------
// Views. Each answers from the store at the view's height; an unknown key answers empty.

// Request: empty (the view's height) or u32 LE height. Answer: the 48-byte block summary.
export function block_summary(): usize {
  const input = loadInput();
  let height = input.height;
  if (input.payload.byteLength == 4) {
    height = readU32(input.payload, 0);
  } else if (input.payload.byteLength != 0) {
    abort("block_summary request must be empty or a u32 LE height", "index.ts");
  }
  return answer(get(blockKey(height)));
}

function outpointRequest(input: Input, what: string): void {
  if (input.payload.byteLength != OUTPOINT_BYTES) {
    abort(`${what} request must be txid (32 bytes) + vout (u32 LE)`, "index.ts");
  }
}

// Request: txid(32, internal order) ‖ vout u32 LE. Answer: value_sat u64 LE ‖ scriptPubKey.
export function outpoint(): usize {
  const input = loadInput();
  outpointRequest(input, "outpoint");
  const key = outpointKey(OUTPOINT_PREFIX, dataOf(input.payload), readU32(input.payload, 32));
  return answer(get(key));
}

// Request: txid(32, internal order) ‖ vout u32 LE. Answer: spending txid(32) ‖ input index u32.
export function spend(): usize {
  const input = loadInput();
  outpointRequest(input, "spend");
  const key = outpointKey(SPEND_PREFIX, dataOf(input.payload), readU32(input.payload, 32));
  return answer(get(key));
}

// Request: raw scriptPubKey bytes. Answer: received_sat u64 ‖ output_count u64 ‖ spent_sat u64.
export function script_totals(): usize {
  const input = loadInput();
  return answer(get(scriptKey(dataOf(input.payload), input.payload.byteLength)));
}
