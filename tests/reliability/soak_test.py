#!/usr/bin/python3
"""Soak suite: the leaky guest under `threshold` for 20,000 blocks; tandemd's resident memory
stays bounded, because the instance pair replaces the leaking instance before it reaches its cap
and the replaced instances' memory is given back.

tandemd runs with --swap_policy=threshold --memory_limit=64MiB (warm at 70%, swap at 90%) and
--fsync=false; leaky leaks 64 KiB per block, so an instance reaches the swap point after about
900 blocks and the run makes about 20 swaps. Blocks go through StreamBlocks. Every 100 blocks the
test samples VmRSS from /proc/PID/status.

Checks:
- every block commits, in order; the guest never sees its cap (no block fails);
- the pair swapped (active generation grew by at least 10) and the active's linear memory is
  below the cap at the end;
- after warm-up (the first 2,000 blocks), the mean RSS of the last 1,000 blocks is within 1.5x of
  the mean of blocks 2,001-3,000, and the peak RSS of the whole run is below 1 GiB.
Prints the curve: min/mean/max RSS of the first and last thousand blocks, and one sample per
thousand blocks.

Usage: soak_test.py --tandemd PATH --stubs DIR --guests DIR [--blocks_total 20000]
"""
import struct
import time

import harness as h

MiB = 1 << 20


def summary(samples):
    values = [rss for _, rss in samples]
    return (f"min {min(values) / 1024:.1f} MiB, mean {sum(values) / len(values) / 1024:.1f} MiB, "
            f"max {max(values) / 1024:.1f} MiB over {len(values)} samples")


def main():
    args = h.common_args(__doc__, lambda p: p.add_argument("--blocks_total", type=int,
                                                           default=20000))
    started = time.time()
    total = args.blocks_total
    work = h.WorkDir("tandem-soak-", args.keep)
    node = h.Node(args.tandemd, f"{args.guests}/leaky.wasm", work("db"), work("tandemd.log"),
                  ["--fsync=false", "--swap_policy=threshold", "--memory_limit=64MiB"],
                  name="soak").start()
    first_generation = node.status().active.generation
    samples = [(0, node.rss_kib())]
    expected = [1]

    def on_response(response):
        height = response.block.height
        assert height == expected[0], f"answer for height {height}, expected {expected[0]}"
        expected[0] += 1
        if height % 100 == 0:
            samples.append((height, node.rss_kib()))
            if height % 1000 == 0:
                print(f"  block {height:6d}: RSS {samples[-1][1] / 1024:.1f} MiB "
                      f"({time.time() - started:.0f} s)", flush=True)

    payload = struct.pack("<I", 64)
    node.stream((payload for _ in range(total)), 1, timeout=900, on_response=on_response)
    assert expected[0] == total + 1 and node.tip() == total
    status = node.status()
    swaps = status.active.generation - first_generation
    assert swaps >= 10, f"only {swaps} generations in {total} blocks: threshold never swapped?"
    assert status.active.memory_bytes < status.memory_limit_bytes, status
    leaked = struct.unpack("<Q", node.indexer.View(h.pb.ViewRequest(name="leaked"),
                                                   timeout=30).answer)[0]
    assert leaked < 64 * MiB, f"the active instance leaked {leaked} bytes, past the cap"

    first = [s for s in samples if 0 < s[0] <= 1000]
    baseline = [s for s in samples if 2000 < s[0] <= 3000]
    last = [s for s in samples if s[0] > total - 1000]
    print(f"first 1,000 blocks: {summary(first)}")
    print(f"blocks 2,001-3,000 (after warm-up): {summary(baseline)}")
    print(f"last 1,000 blocks: {summary(last)}")
    mean = lambda xs: sum(rss for _, rss in xs) / len(xs)  # noqa: E731
    peak = max(rss for _, rss in samples)
    print(f"{total} blocks, {swaps} generations, peak RSS {peak / 1024:.1f} MiB, "
          f"{total / (time.time() - started):.0f} blocks/s", flush=True)
    assert mean(last) <= 1.5 * mean(baseline), (
        f"RSS grew: last 1,000 blocks {mean(last) / 1024:.1f} MiB vs "
        f"{mean(baseline) / 1024:.1f} MiB after warm-up")
    assert peak < 1024 * 1024, f"peak RSS {peak / 1024:.1f} MiB is above 1 GiB"
    assert node.stop() == 0
    h.report("soak_test", started)


if __name__ == "__main__":
    main()
