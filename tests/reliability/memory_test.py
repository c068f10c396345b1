#!/usr/bin/python3
"""Memory-determinism suite: a host that cannot provide memory never changes what the guest
observes. Every block gets the reference's outcome, or a clean host error (UNAVAILABLE) with
nothing committed (the tip and its root unchanged); never another root (docs/design.md,
"Failure kinds").

Guest: memory_stress (payload: N u32 allocations of M u32 MiB; flushes `result` -> SUCCESS/ERROR
and `allocated` -> u32). Every node runs the same payload sequence, each at its own tip + 1.

How the outcomes are compared without depending on heights: the state root is recomputed here,
independently of tandem (root(h) = SHA-256(root(h-1) || u32 BE h || SHA-256(sorted writes))).
For each payload the reference's writes are found by trying every possible (result, allocated)
against its root transition (exactly one must fit), and on every other node a committed block
must have root == next_root(its previous root, its height, the reference's writes).

Nodes (all --swap_policy=block, --standby_wait=2s so a host failure of a warm-up is bounded):
  reference      no process limits, --memory_limit=4GiB (the default)
  data-1GiB/2GiB RLIMIT_DATA: writable private memory, so committing guest pages (memory.grow)
                 fails below the cap inside a call -> UNAVAILABLE "could not provide memory"
  as-30GiB       RLIMIT_AS: each wasm memory reserves ~10 GiB of address space, so warm-ups fail
                 when instances pile up -> UNAVAILABLE "no ready instance"
Guest-visible cap (--memory_limit=64MiB): the reference-64 node (no limits) and data-1GiB-64
(RLIMIT_DATA 1 GiB, far above the cap) must both commit every payload (never a host error: the
cap is below what the host provides) with the same writes; a payload needing more than the cap
gets ERROR with the same `allocated` on both.

Usage: memory_test.py --tandemd PATH --stubs DIR --guests DIR
"""
import struct
import time

import harness as h

GiB = 1 << 30

# (N, M MiB). 100 x 64 MiB passes the 4 GiB cap (63 succeed, guests/README.md); 1 x 3000 MiB
# and 2 x 1024 MiB approach it; the small ones keep nodes in step between the big ones.
PAYLOADS = [(0, 0), (1, 1), (10, 64), (100, 64), (1, 1), (4, 512), (1, 3000), (1, 1),
            (2, 1024), (30, 64), (1, 1)]
# Under --memory_limit=64MiB: the guest's own memory is a few MiB, so 1 x 64 MiB never fits.
CAPPED_PAYLOADS = [(1, 1), (1, 64), (3, 16), (100, 1), (1, 1), (2, 32), (0, 0), (64, 1)]


def candidate_writes(count):
    for result in (b"SUCCESS", b"ERROR"):
        for allocated in range(count + 1):
            yield {b"result": result, b"allocated": struct.pack("<I", allocated)}


class Runner:
    """One node fed the payloads in order; records every outcome."""

    def __init__(self, node):
        self.node = node
        self.root = b"\x00" * 32
        self.height = 0
        self.outcomes = []

    def submit(self, payload):
        block = struct.pack("<II", *payload)
        try:
            response = self.node.submit(self.height + 1, block, timeout=120)
        except h.grpc.RpcError as error:
            tip = self.node.tip() or 0
            assert tip == self.height, f"{self.node.name}: a failed block moved the tip"
            if tip:
                assert bytes(self.node.block(tip).state_root) == self.root
            self.outcomes.append((error.code(), error.details()))
            return None
        assert response.block.height == self.height + 1
        previous = self.root
        self.height += 1
        self.root = bytes(response.block.state_root)
        self.outcomes.append(("OK", None))
        return previous


def writes_of(previous, height, root, count):
    """The one (result, allocated) whose writes take previous to root at height."""
    matches = [w for w in candidate_writes(count) if h.next_root(previous, height, w) == root]
    assert len(matches) == 1, f"{len(matches)} write sets explain the root at height {height}"
    return matches[0]


def describe(writes):
    return f"{writes[b'result'].decode()} {struct.unpack('<I', writes[b'allocated'])[0]}"


def run_sequence(args, work, payloads, nodes_spec, reference_name, must_commit=False):
    runners = {}
    for name, flags, limits in nodes_spec:
        node = h.Node(args.tandemd, f"{args.guests}/memory_stress.wasm", work(f"{name}-db"),
                      work(f"{name}.log"), ["--fsync=false", "--swap_policy=block",
                                            "--standby_wait=2s", *flags],
                      limits=limits, name=name)
        runners[name] = Runner(node.start())
    reference = runners[reference_name]
    reference.results = {}
    host_errors = 0
    for payload in payloads:
        t0 = time.time()
        previous = reference.submit(payload)
        assert previous is not None, (
            f"the reference failed {payload}: {reference.outcomes[-1]}")
        expected = writes_of(previous, reference.height, reference.root, payload[0])
        reference.results[payload] = describe(expected)
        line = [f"{payload[0]:3d} x {payload[1]:4d} MiB: reference {describe(expected)}"]
        for name, runner in runners.items():
            if runner is reference:
                continue
            previous = runner.submit(payload)
            if previous is None:
                code, details = runner.outcomes[-1]
                assert not must_commit, f"{name}: {payload} failed below the cap: {details}"
                assert code == h.grpc.StatusCode.UNAVAILABLE, (
                    f"{name}: {payload}: expected OK or UNAVAILABLE, got {code.name}: {details}")
                host_errors += 1
                line.append(f"{name} UNAVAILABLE")
            else:
                got = h.next_root(previous, runner.height, expected)
                assert runner.root == got, (
                    f"{name}: {payload} committed another outcome than the reference "
                    f"({describe(expected)}) at height {runner.height}")
                line.append(f"{name} same")
        print("; ".join(line) + f" ({time.time() - t0:.1f} s)", flush=True)
        for runner in runners.values():  # every node is still healthy
            assert runner.node.health() == 1, runner.node.name
    for runner in runners.values():
        assert runner.node.stop() == 0, runner.node.name
    return runners, host_errors


def main():
    args = h.common_args(__doc__)
    started = time.time()
    work = h.WorkDir("tandem-memory-", args.keep)

    runners, host_errors = run_sequence(args, work, PAYLOADS, [
        ("reference", [], None),
        ("data-1GiB", [], {"data": 1 * GiB}),
        ("data-2GiB", [], {"data": 2 * GiB}),
        ("as-30GiB", [], {"as": 30 * GiB}),
    ], "reference")
    # The documented figure: 63 of 100 x 64 MiB fit below 4 GiB.
    assert runners["reference"].results[(100, 64)] == "ERROR 63", runners["reference"].results
    assert host_errors > 0, "no limit ever failed: the suite did not test the host-failure path"
    for name in ("data-1GiB", "data-2GiB"):
        assert any(o[0] == h.grpc.StatusCode.UNAVAILABLE and "memory" in o[1]
                   for o in runners[name].outcomes), f"{name} never reported a memory failure"
    print(f"{host_errors} clean host errors, no other outcome than the reference's", flush=True)

    # The guest-visible cap: identical failures to allocate, never a host error.
    runners, _ = run_sequence(args, work, CAPPED_PAYLOADS, [
        ("reference-64", ["--memory_limit=64MiB"], None),
        ("data-1GiB-64", ["--memory_limit=64MiB"], {"data": 1 * GiB}),
    ], "reference-64", must_commit=True)
    results = runners["reference-64"].results
    assert results[(1, 64)] == "ERROR 0" and results[(1, 1)] == "SUCCESS 1", results
    h.report("memory_test", started)


if __name__ == "__main__":
    main()
