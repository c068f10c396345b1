#!/usr/bin/python3
"""Two-nodes suite: nodes that index the same blocks have the same state root at every height,
whatever their swap policy, swaps and restarts; and tandem-compare names the first height where
two nodes differ.

Chain: every fixture block (the 1.4 MB one included), then deterministic synthetic Bitcoin blocks
whose transactions spend earlier outputs; every 40th synthetic block has 2,000 transactions, so
the guest's memory grows and `threshold` swaps. bitcoin_indexer keeps no state across calls, so
every policy must index it alike (docs/design.md, "Swap policies").

Nodes, all fed the same chain:
  block      --swap_policy=block (every block on a fresh instance): the reference.
  none       --swap_policy=none; a second client thread calls Admin.Swap at random moments while
             blocks stream in, and the node is restarted (SIGTERM) half-way and SIGKILLed and
             restarted later.
  threshold  --swap_policy=threshold --memory_limit=8MiB --warm_at=0.3 --swap_at=0.35: swaps
             whenever a big block grows the memory (the test checks that it did swap).
  sync       --swap_policy=sync.
Checks: GetBlock at every height is identical on all four nodes (hash and root); tandem-compare
agrees (exit 0, and its --json output).

tandem-compare on nodes that differ: a fifth node is fed the same chain except at one random
height K (another block there). tandem-compare reports K as the first difference (exit 1; text,
--json and --bisect), equal below K (--to K-1, exit 0), a height one node lacks as a difference,
usage errors with exit 2 and an unreachable node with exit 3. Nodes whose roots differ because
their memory caps or modules do (memory_stress under 16 MiB and 64 MiB; the indexer and
memory_stress) are reported as "different cap" / "different module and cap"; the threshold
node's other cap, with equal roots, gives a warning.

The seed (--seed, else $TANDEM_TEST_SEED, else a fixed one) decides the chain, the moments of the
manual swaps and the fork height; the run prints it with the command that reruns it.

Usage: two_nodes_test.py --tandemd PATH --stubs DIR --guests DIR --blocks JSON --compare PATH
       [--seed N]
"""
import json
import random
import struct
import subprocess
import threading
import time

import harness as h


def run_compare(compare, *args):
    result = subprocess.run([compare, *args], capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout, result.stderr


def main():
    args = h.common_args(__doc__, lambda p: (p.add_argument("--compare", required=True),
                                             p.add_argument("--chain", type=int, default=800)),
                         seeded=True)
    started = time.time()
    seed = args.seed
    rng = random.Random(seed)
    work = h.WorkDir("tandem-two-nodes-", args.keep)
    module = f"{args.guests}/bitcoin_indexer.wasm"
    chain = h.mixed_chain(args.chain, args.blocks, seed=seed, big_every=40, all_fixtures=True)
    n = len(chain)

    def node(name, *flags):
        return h.Node(args.tandemd, module, work(f"{name}-db"), work(f"{name}.log"),
                      ["--fsync=false", *flags], name=name).start()

    block = node("block", "--swap_policy=block")
    block.stream(chain, 1)
    print(f"block: {n} blocks in {time.time() - started:.1f} s", flush=True)

    # `none`, with manual swaps from a second client, a clean restart and a kill.
    none = node("none", "--swap_policy=none")
    swaps = []
    swap_errors = []

    def swapper(stop, pauses):
        while not stop.is_set():
            time.sleep(pauses.uniform(0.005, 0.08))
            try:
                response = none.admin.Swap(h.pb.SwapRequest(), timeout=30)
                # Generations name instances in the order they were made; warmed in parallel they
                # may serve out of order (docs/design.md), so a swap promises another instance.
                assert response.generation != response.previous_generation, response
                swaps.append(response.generation)
            except h.grpc.RpcError as error:
                if not stop.is_set():
                    swap_errors.append(f"{error.code().name}: {error.details()}")

    def feed_with_swaps(first, last):
        stop = threading.Event()
        # The thread draws from a generator of its own, seeded from the main one before it
        # starts: how many pauses it draws depends on timing, and must not shift what the main
        # thread draws next (the fork height below), or a seed would not reproduce a run.
        pauses = random.Random(rng.randrange(1 << 32))
        thread = threading.Thread(target=swapper, args=(stop, pauses), daemon=True)
        thread.start()
        try:
            for height in range(first, last + 1):  # unary, so swaps interleave with blocks
                none.submit(height, chain[height - 1])
        finally:
            stop.set()
            thread.join(timeout=60)
        assert not swap_errors, swap_errors

    third = n // 3
    feed_with_swaps(1, third)
    assert none.stop() == 0
    none.start()
    assert none.tip() == third
    feed_with_swaps(third + 1, 2 * third)
    none.kill()
    none.start()
    assert none.tip() == 2 * third
    feed_with_swaps(2 * third + 1, n)
    assert len(swaps) >= 5, f"only {len(swaps)} manual swaps happened"
    print(f"none: {len(swaps)} manual swaps, one restart, one kill", flush=True)

    threshold = node("threshold", "--swap_policy=threshold", "--memory_limit=8MiB",
                     "--warm_at=0.3", "--swap_at=0.35")
    first_generation = threshold.status().active.generation
    threshold.stream(chain, 1)
    threshold_generation = threshold.status().active.generation
    assert threshold_generation > first_generation + 2, (
        f"threshold never swapped: generation {first_generation} -> {threshold_generation}")
    print(f"threshold: generation {first_generation} -> {threshold_generation}", flush=True)

    sync = node("sync", "--swap_policy=sync")
    sync.stream(chain, 1)

    # Every height, every node.
    nodes = [block, none, threshold, sync]
    for height in range(1, n + 1):
        records = [(bytes(r.hash), bytes(r.state_root)) for r in (x.block(height) for x in nodes)]
        assert len(set(records)) == 1, (
            f"height {height}: the nodes differ: "
            + ", ".join(f"{x.name} {rec[1].hex()}" for x, rec in zip(nodes, records)))
    print(f"{n} heights identical on block, none, threshold and sync", flush=True)

    address = lambda x: f"127.0.0.1:{x.port}"  # noqa: E731
    for other in nodes[1:]:
        code, out, err = run_compare(args.compare, "--a", address(block), "--b", address(other))
        assert code == 0, (other.name, code, out, err)
        assert f"heights 1..{n}" in out, out
        # The threshold node's cap differs: equal roots so far, and a warning that says so.
        assert ("warning: different cap" in out) == (other is threshold), (other.name, out)
    code, out, _ = run_compare(args.compare, "--a", address(block), "--b", address(none), "--json")
    result = json.loads(out)
    assert code == 0 and result["equal"] is True and result["compared"] == n, out
    assert result["from"] == 1 and result["to"] == n, out

    # A node that differs at height K.
    k = rng.randrange(2, n - 1)
    other_chain = list(chain)
    other_chain[k - 1] = h.SyntheticChain(seed + 1).take(1)[0]
    fork = node("fork", "--swap_policy=none")
    fork.stream(other_chain, 1)
    code, out, err = run_compare(args.compare, "--a", address(block), "--b", address(fork))
    assert code == 1 and f"first difference at height {k}" in out, (code, out, err)
    code, out, _ = run_compare(args.compare, "--a", address(block), "--b", address(fork), "--json")
    result = json.loads(out)
    assert code == 1 and result["equal"] is False and result["first_difference"] == k, out
    assert result["a"]["root"] == block.block(k).state_root.hex(), out
    assert result["b"]["root"] == fork.block(k).state_root.hex(), out
    assert result["compared"] == k, out
    code, out, _ = run_compare(args.compare, "--a", address(block), "--b", address(fork),
                               "--bisect", "--json")
    result = json.loads(out)
    assert code == 1 and result["first_difference"] == k and result["compared"] < 40, out
    code, out, _ = run_compare(args.compare, "--a", address(block), "--b", address(fork),
                               "--to", str(k - 1))
    assert code == 0, out
    code, out, _ = run_compare(args.compare, "--a", address(block), "--b", address(fork),
                               "--from", str(k + 1), "--to", str(n), "--json")
    assert code == 1 and json.loads(out)["first_difference"] == k + 1, out  # roots chain
    code, out, _ = run_compare(args.compare, "--a", address(block), "--b", address(none),
                               "--bisect")
    assert code == 0, out
    # A height one node lacks: the fork is rolled back below the tip.
    fork.indexer.Rollback(h.pb.RollbackRequest(height=k - 1), timeout=60)
    code, out, _ = run_compare(args.compare, "--a", address(block), "--b", address(fork),
                               "--from", "1", "--to", str(n), "--json")
    result = json.loads(out)
    assert code == 1 and result["first_difference"] == k, out
    assert result["b"] == {"committed": False}, out
    code, out, _ = run_compare(args.compare, "--a", address(block), "--b", address(fork))
    assert code == 0 and f"heights 1..{k - 1}" in out, out  # the default range: common heights
    print(f"tandem-compare found the fork at height {k}", flush=True)

    # Roots that differ because the memory cap does: memory_stress allocates 1 x 32 MiB, which
    # fits under 64 MiB and not under 16 MiB, so the two nodes commit different writes.
    def stress(name, cap):
        x = h.Node(args.tandemd, f"{args.guests}/memory_stress.wasm", work(f"{name}-db"),
                   work(f"{name}.log"), ["--fsync=false", f"--memory_limit={cap}"],
                   name=name).start()
        x.submit(1, struct.pack("<II", 1, 32))
        return x
    small, large = stress("cap16", "16MiB"), stress("cap64", "64MiB")
    assert small.block(1).state_root != large.block(1).state_root
    code, out, err = run_compare(args.compare, "--a", address(small), "--b", address(large))
    assert code == 1 and out.startswith("different cap:"), (code, out, err)
    assert "memory cap 16777216 bytes" in out and "memory cap 67108864 bytes" in out, out
    code, out, _ = run_compare(args.compare, "--a", address(small), "--b", address(large),
                               "--json")
    result = json.loads(out)
    assert code == 1 and result["different"] == "cap" and result["first_difference"] == 1, out
    assert result["identity_a"]["memory_limit_bytes"] == 16 << 20, out
    code, out, _ = run_compare(args.compare, "--a", address(block), "--b", address(large))
    assert code == 1 and out.startswith("different module and cap:"), out
    print("tandem-compare names a different cap or module as the cause", flush=True)

    # Usage errors and RPC errors.
    for bad in ([], ["--a", address(block)], ["--a", address(block), "--b", address(none),
                                              "--from", "5", "--to", "3"],
                ["--a", address(block), "--b", address(none), "--from", "x"],
                ["--a", address(block), "--b", address(none), "--bogus"],
                ["--a", address(block), "--b"]):
        code, out, err = run_compare(args.compare, *bad)
        assert code == 2, (bad, code, out, err)
    code, out, err = run_compare(args.compare, "--a", address(block), "--b", "127.0.0.1:1",
                                 "--timeout", "5s")
    assert code == 3 and "node b" in err, (code, out, err)

    for x in nodes + [fork, small, large]:
        assert x.stop() == 0, x.name
    h.report("two_nodes_test", started)


if __name__ == "__main__":
    main()
