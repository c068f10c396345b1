#!/usr/bin/python3
"""Catch-up of a regtest chain: tandem-follow against `tandemctl submit` of the same blocks from a
file. The follower's overhead is what reading the blocks from a live node (JSON-RPC, hex, parent
checks) costs beyond feeding tandemd from a file; the target is at most 20%.

A real node (Debian's litecoind, regtest) mines --chain_blocks blocks with wallet transactions every
10 blocks; the blocks are written to a hex file (`getblock <hash> 0`). Each round starts two fresh
tandemd (same flags: the defaults, fsync on, swap policy `block`) and times, from process start to
exit:
  submit  `tandemctl submit --start_height=1 FILE`
  follow  `tandem-follow --start_height=1 --exit_at_tip` reading from the node
The order alternates between rounds. Both tandemd end with the same tip and state root (checked).
overhead = median(follow) / median(submit) - 1. Prints JSON (and writes it to --json_out).
With --baseline_follow=OTHER_BINARY each round also times that tandem-follow (a build before a
change), in a rotating order, on the same chain: `baseline_*` figures, for old against new.
--follow_flags adds flags to both tandem-follow runs (e.g. "--batch=128 --fetch_ahead=256").
Each run also records the CPU seconds spent in that window by the client (tandemctl or
tandem-follow), by tandemd and by the node: on 2 cores, where the three compete, the follower's
overhead is mostly the node's work of serving the blocks.

Run it with nothing else running on the machine:
  python3 benchmarks/follow_bench.py --tandemd build/server/tandemd \
    --tandemctl build/tools/tandemctl --follow build/tools/follow/tandem-follow \
    --stubs build/proto/python --guests build/guests --json_out follow_bench.json
"""
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reliability"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tools", "follow"))
import harness as h  # noqa: E402
from litecoin_node import LitecoinNode  # noqa: E402


def machine():
    with open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                      if line.startswith("model name")), "?")
    return {"cpus": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "load_average": os.getloadavg()}


def process_cpu_seconds(pid):
    """User + system CPU seconds of a live process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    """User + system CPU seconds of this process's children that have exited and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuWindow:
    """CPU seconds spent between start() and stop() by the client (a child that exits in the
    window), tandemd and the node."""

    def __init__(self, tandem_pid, node_pid):
        self.pids = {"tandemd": tandem_pid, "node": node_pid}

    def start(self):
        self.before = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        self.before["client"] = children_cpu_seconds()

    def stop(self):
        after = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        after["client"] = children_cpu_seconds()
        return {name: round(after[name] - self.before[name], 3) for name in after}


def baseline_figures(seconds, cpu_seconds, submit_median):
    """The --baseline_follow binary's figures, against the same rounds' submit runs."""
    median = statistics.median(seconds["baseline"])
    return {
        "baseline_follow_seconds": [round(s, 3) for s in seconds["baseline"]],
        "baseline_follow_median_seconds": round(median, 3),
        "baseline_overhead": round(median / submit_median - 1, 4),
        "baseline_follow_cpu_seconds_median": {
            who: round(statistics.median(c[who] for c in cpu_seconds["baseline"]), 3)
            for who in ("client", "tandemd", "node")},
    }


def main():
    args = h.common_args(__doc__, lambda p: (
        p.add_argument("--tandemctl", required=True),
        p.add_argument("--follow", required=True),
        p.add_argument("--chain_blocks", type=int, default=2000),
        p.add_argument("--rounds", type=int, default=5),
        p.add_argument("--baseline_follow"),
        p.add_argument("--follow_flags", default="",
                       help="more flags for tandem-follow (both binaries), space-separated"),
        p.add_argument("--json_out")))
    work = h.WorkDir("tandem-follow-bench-", args.keep)
    module = os.path.join(args.guests, "bitcoin_indexer.wasm")
    load_before = os.getloadavg()

    node = LitecoinNode(work("node"), work("node.log")).start()
    node.rpc("createwallet", "bench")
    kinds = ("legacy", "p2sh-segwit", "bech32")
    addresses = [node.rpc("getnewaddress", "", kind) for kind in kinds]
    node.mine(101, addresses[2])
    while node.height() < args.chain_blocks:
        for address in addresses:
            node.rpc("sendtoaddress", address, 0.5)
        node.mine(min(10, args.chain_blocks - node.height()), addresses[node.height() % 3])
    hex_path = work("blocks.hex")
    node.write_hex_blocks(hex_path, 1, args.chain_blocks)
    chain_bytes = os.path.getsize(hex_path) // 2

    def fresh_tandemd(name):
        return h.Node(args.tandemd, module, work(f"{name}-db"), work(f"{name}.log"),
                      name=name).start()

    def timed(tandem, command):
        cpu = CpuWindow(tandem.process.pid, node.process.pid)
        cpu.start()
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, timeout=1200)
        took = time.perf_counter() - started
        return took, tandem, cpu.stop()

    def run_submit(round_index):
        tandem = fresh_tandemd(f"submit-{round_index}")
        return timed(tandem, [args.tandemctl, f"--addr=127.0.0.1:{tandem.port}", "--start_height=1",
                              "--progress=false", "submit", hex_path])

    def run_follow(round_index, binary=args.follow, name="follow"):
        tandem = fresh_tandemd(f"{name}-{round_index}")
        return timed(tandem, [binary, f"--rpc_url={node.url}", *node.credentials_args(),
                              f"--addr=127.0.0.1:{tandem.port}", "--start_height=1",
                              "--exit_at_tip", "--metrics_listen=", "--progress_interval=1h",
                              *args.follow_flags.split()])

    seconds = {"submit": [], "follow": [], "baseline": []}
    submit_seconds, follow_seconds = seconds["submit"], seconds["follow"]
    cpu_seconds = {"submit": [], "follow": [], "baseline": []}
    for round_index in range(args.rounds):
        order = [("submit", run_submit), ("follow", run_follow)]
        if args.baseline_follow:
            order.append(("baseline", lambda i: run_follow(i, args.baseline_follow, "baseline")))
            shift = round_index % 3
            order = order[shift:] + order[:shift]
            if round_index % 2:
                order.reverse()
        elif round_index % 2:
            order.reverse()
        finished = {}
        for name, run in order:
            took, tandem, cpu = run(round_index)
            cpu_seconds[name].append(cpu)
            assert tandem.tip() == args.chain_blocks, (name, tandem.tip())
            record = tandem.block(args.chain_blocks)
            # The hashes differ by design (tandemctl stores SHA-256 of the bytes, the follower the
            # chain's hash): compare the state roots.
            finished[name] = (record.height, bytes(record.state_root), record.write_count)
            seconds[name].append(took)
            tandem.stop()
            print(f"round {round_index + 1}: {name} {took:.2f} s "
                  f"({args.chain_blocks / took:.0f} blocks/s); CPU s: client {cpu['client']:.2f}, "
                  f"tandemd {cpu['tandemd']:.2f}, node {cpu['node']:.2f}",
                  file=sys.stderr, flush=True)
        assert len(set(finished.values())) == 1, f"the tandemd's state roots differ: {finished}"
    node.stop()

    submit_median = statistics.median(submit_seconds)
    follow_median = statistics.median(follow_seconds)
    result = {
        "benchmark": "follow_catch_up",
        "blocks": args.chain_blocks,
        "chain_bytes": chain_bytes,
        "rounds": args.rounds,
        "follow_flags": args.follow_flags,
        "submit_seconds": [round(s, 3) for s in submit_seconds],
        "follow_seconds": [round(s, 3) for s in follow_seconds],
        "submit_median_seconds": round(submit_median, 3),
        "follow_median_seconds": round(follow_median, 3),
        "submit_blocks_per_second": round(args.chain_blocks / submit_median, 1),
        "follow_blocks_per_second": round(args.chain_blocks / follow_median, 1),
        "overhead": round(follow_median / submit_median - 1, 4),
        # Medians over the rounds of the CPU seconds each process spent in the timed window.
        "submit_cpu_seconds_median": {
            who: round(statistics.median(c[who] for c in cpu_seconds["submit"]), 3)
            for who in ("client", "tandemd", "node")},
        "follow_cpu_seconds_median": {
            who: round(statistics.median(c[who] for c in cpu_seconds["follow"]), 3)
            for who in ("client", "tandemd", "node")},
        "target_overhead": 0.20,
        "meets_target": follow_median / submit_median - 1 <= 0.20,
        **(baseline_figures(seconds, cpu_seconds, submit_median) if args.baseline_follow else {}),
        "machine": machine(),
        "load_average_before": load_before,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
