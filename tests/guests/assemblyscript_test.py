#!/usr/bin/env python3
"""The AssemblyScript example indexer (guests/assemblyscript) against the C one, through tandemd
on the real block fixtures: two tandemd processes, one per guest, are fed the same blocks.

Checks: every height's state root is identical on both nodes (tandem-compare, and GetBlock at each
height), so both guests wrote the same keys and values; every view answers the same on both for
every block summary and for outpoints, spends and script totals of real transactions (parsed here
from the fixtures), and an unknown key answers empty on both; a malformed block is refused on both
with the same cause at the same byte; a bad view request aborts on both; and the AssemblyScript
runtime's exports, which take parameters, are refused as views with INVALID_ARGUMENT naming their
signature.

Usage: assemblyscript_test.py --tandemd PATH --stubs DIR --guests DIR --blocks JSON --compare PATH
"""

import hashlib
import json
import re
import struct
import subprocess
import sys
import os
import time

sys.dont_write_bytecode = True  # No __pycache__ in the source tree.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reliability"))
import harness as h  # noqa: E402


def dsha(data):
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def varint(data, at):
    first = data[at]
    if first < 0xFD:
        return first, at + 1
    width = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return int.from_bytes(data[at + 1:at + 1 + width], "little"), at + 1 + width


def transactions(block):
    """(txid, [(prev_txid, prev_vout)], [script_pubkey]) for each transaction of a block."""
    count, at = varint(block, 80)
    for _ in range(count):
        start = at
        at += 4
        segwit = block[at] == 0 and block[at + 1] == 1
        if segwit:
            at += 2
        body = at
        n_in, at = varint(block, at)
        inputs = []
        for _ in range(n_in):
            inputs.append((block[at:at + 32], struct.unpack_from("<I", block, at + 32)[0]))
            length, at = varint(block, at + 36)
            at += length + 4
        n_out, at = varint(block, at)
        scripts = []
        for _ in range(n_out):
            length, script_at = varint(block, at + 8)
            scripts.append(block[script_at:script_at + length])
            at = script_at + length
        body_end = at
        if segwit:
            for _ in range(n_in):
                items, at = varint(block, at)
                for _ in range(items):
                    length, at = varint(block, at)
                    at += length
        txid = dsha(block[start:start + 4] + block[body:body_end] + block[at:at + 4])
        at += 4
        yield txid, inputs, scripts


def view(node, name, height, request):
    return bytes(node.indexer.View(h.pb.ViewRequest(name=name, height=height, request=request),
                                   timeout=30).answer)


def main():
    started = time.time()
    args = h.common_args(__doc__, lambda p: p.add_argument("--compare", required=True))
    work = h.WorkDir("tandem-as-guest", args.keep)
    blocks = h.fixture_blocks(args.blocks)
    nodes = {}
    for guest in ("bitcoin_indexer", "bitcoin_indexer_as"):
        nodes[guest] = h.Node(args.tandemd, os.path.join(args.guests, f"{guest}.wasm"),
                              work(f"{guest}-db"), work(f"{guest}.log"), flags=["--fsync=false"],
                              name=guest).start()
    c, assemblyscript = nodes["bitcoin_indexer"], nodes["bitcoin_indexer_as"]
    for node in nodes.values():
        node.stream(blocks, 1)
    tip = len(blocks)

    # Same roots at every height: both guests wrote the same keys and values.
    assert c.roots(1, tip) == assemblyscript.roots(1, tip), "the state roots differ"
    result = subprocess.run([args.compare, f"--a=127.0.0.1:{c.port}",
                             f"--b=127.0.0.1:{assemblyscript.port}", "--json"],
                            capture_output=True, text=True, timeout=120)
    compared = json.loads(result.stdout)
    assert result.returncode == 0 and compared["equal"] and compared["compared"] == tip, (
        result.stdout, result.stderr)
    print(f"{tip} heights: identical state roots (tandem-compare)", flush=True)

    # Views, on real keys and on unknown ones.
    requests = [("block_summary", b""), ("block_summary", struct.pack("<I", tip + 5))]
    requests += [("block_summary", struct.pack("<I", height)) for height in range(1, tip + 1)]
    keyed = []
    for block in blocks:
        for txid, inputs, scripts in transactions(block):
            for vout, script in enumerate(scripts[:3]):
                keyed.append(("outpoint", txid + struct.pack("<I", vout)))
                keyed.append(("script_totals", script))
            for prev_txid, prev_vout in inputs[:2]:
                keyed.append(("spend", prev_txid + struct.pack("<I", prev_vout)))
    # An even sample of about 1,500 from every block, so the run stays short.
    requests += keyed[::max(1, len(keyed) // 1500)]
    spends = sum(1 for name, _ in requests if name == "spend")
    requests += [("outpoint", b"\x11" * 36), ("spend", b"\x22" * 36), ("script_totals", b"none")]
    empty = 0
    for name, request in requests:
        for height in (tip, tip // 2):
            a, b = view(c, name, height, request), view(assemblyscript, name, height, request)
            assert a == b, f"{name}({request.hex()}) at {height}: C {a.hex()}, AS {b.hex()}"
            empty += not a
    assert empty < len(requests), "every view answered empty"
    print(f"{2 * len(requests)} views ({spends} spends) answer the same on both guests "
          f"({empty} empty)", flush=True)

    # Failures: the same cause for a malformed block, an abort for a bad request.
    causes = []
    for node in nodes.values():
        details = h.expect_code(h.grpc.StatusCode.ABORTED, node.submit, tip + 1, blocks[3][:4000])
        cause = re.search(r"malformed block: .*? at byte \d+", details)
        assert cause, details
        causes.append(cause.group(0))
        h.expect_code(h.grpc.StatusCode.ABORTED, view, node, "outpoint", tip, b"short")
    assert causes[0] == causes[1], causes
    print(f"malformed block on both: {causes[0]}", flush=True)

    # The AssemblyScript runtime's exports are not views.
    for name, signature in (("__new", "(i32, i32) -> i32"), ("__pin", "(i32) -> i32"),
                            ("__collect", "() -> ()")):
        details = h.expect_code(h.grpc.StatusCode.INVALID_ARGUMENT, view, assemblyscript, name,
                                tip, b"")
        assert signature in details and name in details, details
    assert assemblyscript.tip() == tip and c.tip() == tip

    for node in nodes.values():
        assert node.stop() == 0, node.name
    work.cleanup()
    h.report("assemblyscript_test", started)


if __name__ == "__main__":
    main()
