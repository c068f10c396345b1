// A zero-copy parser for serialized Bitcoin blocks (legacy and segwit transactions).
// It must never allocate or touch the host ABI: it is compiled natively too, to be tested there.
//
// Usage: btc_block_open, then btc_block_next_tx once per transaction; for each transaction walk
// its inputs and outputs with btc_tx_next_input / btc_tx_next_output. Everything returned points
// into the caller's block bytes, which must outlive the parse.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sha256.h"

enum { kBtcHeaderBytes = 80, kBtcHashBytes = 32 };

typedef enum {
  kBtcOk = 0,
  kBtcTruncatedHeader,
  kBtcTruncatedTxCount,
  kBtcTruncatedTransaction,
  kBtcTruncatedInput,
  kBtcTruncatedOutput,
  kBtcTruncatedWitness,
  kBtcBadSegwitFlag,       // Marker 0x00 followed by a flag other than 0x01.
  kBtcCountTooLarge,       // A varint count that cannot fit in the remaining bytes.
  kBtcNoMoreTransactions,  // btc_block_next_tx called after the last transaction.
  kBtcTrailingBytes,       // Bytes left after the last transaction.
} btc_status;

// A short English description of status, e.g. "truncated transaction output".
const char *btc_status_message(btc_status status);

typedef struct {
  const uint8_t *data;
  size_t len;
  size_t pos;
} btc_reader;

typedef struct {
  uint8_t id[kBtcHashBytes];  // Double SHA-256 of the header, internal byte order.
  uint64_t tx_count;
  uint64_t txs_read;
  btc_reader reader;    // Positioned at the next transaction.
  size_t error_offset;  // Where parsing stopped when a call returned an error.
} btc_block;

typedef struct {
  // Double SHA-256 of the serialization without marker, flag and witnesses, internal byte order.
  uint8_t txid[kBtcHashBytes];
  bool has_witness;
  uint64_t input_count;
  uint64_t output_count;
  // The inputs and outputs, each list starting at its first element (past its count); they are
  // validated by btc_block_next_tx, so walking them cannot fail.
  const uint8_t *inputs;
  const uint8_t *outputs;
  size_t offset;  // Where the transaction starts in the block.
  size_t size;    // Its full serialized size, witnesses included.
} btc_tx;

typedef struct {
  const uint8_t *prev_txid;  // 32 bytes, internal byte order.
  uint32_t prev_vout;
  const uint8_t *script_sig;
  size_t script_sig_len;
  uint32_t sequence;
} btc_txin;

typedef struct {
  uint64_t value_sat;
  const uint8_t *script_pubkey;
  size_t script_pubkey_len;
} btc_txout;

// Walks the inputs or outputs of one transaction.
typedef struct {
  const uint8_t *next;
  uint64_t remaining;
} btc_cursor;

// Parses the header and the transaction count. On error, block->error_offset says where.
btc_status btc_block_open(btc_block *block, const uint8_t *data, size_t len);

// Parses the next transaction and computes its txid. Returns kBtcNoMoreTransactions after the
// last one, or kBtcTrailingBytes if bytes follow it; any other error means the block is malformed
// at block->error_offset.
btc_status btc_block_next_tx(btc_block *block, btc_tx *tx);

btc_cursor btc_tx_inputs(const btc_tx *tx);
btc_cursor btc_tx_outputs(const btc_tx *tx);
// Each returns false when the list is exhausted.
bool btc_next_input(btc_cursor *cursor, btc_txin *input);
bool btc_next_output(btc_cursor *cursor, btc_txout *output);

// True for the input of a coinbase transaction: it spends the null outpoint (all-zero txid,
// index 0xFFFFFFFF) and so spends nothing.
bool btc_txin_is_coinbase(const btc_txin *input);
