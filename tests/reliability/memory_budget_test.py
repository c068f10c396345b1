#!/usr/bin/python3
"""Host memory budget suite: tandemd in a memory cgroup fails what it cannot hold with UNAVAILABLE
and nothing committed; the kernel never kills it (issue: the same indexer in a 4 GB and a 400 MB
container; docs/operations.md, "Host memory budget").

Each scenario creates a child of this process's cgroup v1 memory cgroup with a limit, runs tandemd
in it (it writes its own pid to cgroup.procs before exec), and removes it afterwards. Where the
controller is not writable (no root, cgroup v2 only), the suite says why and is skipped (exit 77).

Guest: memory_stress (payload N u32 allocations of M u32 MiB; `_start` flushes result/allocated,
the `allocate` view and the `init_allocate` init call answer "SUCCESS n" / "ERROR n").
Every node runs --swap_policy=block (the default) with the default 4 GiB cap; "limited" runs in a
400 MiB cgroup and derives its budget from it, "reference" runs without a limit. Nodes in a cgroup
run with small RocksDB caches (--db_block_cache=8MiB --db_write_buffers=16MiB): the default budget
is the limit less the measured headroom less those caches, and the 512 MiB of the defaults would
leave a 400 MiB container nothing.

  blocks    The seed's scenario: the same blocks to both, 40 x 64 MiB among them. The limited node
            answers UNAVAILABLE (cause: the budget; again on a retry: no crash loop), stays up,
            keeps serving views (and refuses a view that cannot fit, UNAVAILABLE), is never OOM
            killed (exit status 0 on SIGTERM, the cgroup's oom_kill 0). Then the limit is raised,
            the node restarted and the block retried: its roots equal the reference's at every
            height, ordinary blocks included.
  warm-up   An init call whose memory fits once but not twice: the limited node runs it, but no
            standby can be warmed next to it (UNAVAILABLE for the next block, typed refusals of
            warm-ups in the metrics), views at the tip still answer; raised limit, restart, retry:
            equal roots.
  override  --host_memory_budget=64MiB in the same 400 MiB cgroup: the budget and its source come
            from the flag, and a 100 MiB block that fits the cgroup's budget is refused.
  caches    The default RocksDB caches (256 MiB each) in the 400 MiB cgroup: the budget is 0, and
            the start-up warning names both caches and their flags; the node still starts, answers
            status, refuses blocks with UNAVAILABLE naming the budget, and stops cleanly.

Usage: memory_budget_test.py --tandemd PATH --stubs DIR --guests DIR
"""
import re
import struct
import sys
import time
import urllib.request

import harness as h

MiB = 1 << 20
LIMIT = 400 * MiB
SKIPPED = 77


def stress(count, mib):
    return struct.pack("<II", count, mib)


# RocksDB's caches for nodes in a cgroup: subtracted from the budget the cgroup gives.
SMALL_CACHES = ["--db_block_cache=8MiB", "--db_write_buffers=16MiB"]
SMALL_CACHES_BYTES = (8 + 16) * MiB

ORDINARY = [stress(0, 0), stress(1, 1), stress(2, 1), stress(1, 4)]
SEED_BLOCK = stress(40, 64)  # 2.5 GiB: far below the 4 GiB cap, far above 400 MiB.


def start(args, work, name, cgroup=None, flags=(), caches=None):
    """A node; in a cgroup it runs with SMALL_CACHES unless `caches` (a list of flags) says
    otherwise."""
    if caches is None:
        caches = SMALL_CACHES if cgroup else []
    node = h.Node(args.tandemd, f"{args.guests}/memory_stress.wasm", work(f"{name}-db"),
                  work(f"{name}.log"),
                  # Touching gigabytes takes seconds on a busy machine: deadlines far from that.
                  ["--fsync=false", "--standby_wait=2s", "--view_deadline=120s",
                   "--block_deadline=120s", "--init_deadline=120s", "--warm_deadline=120s",
                   *caches, *flags],
                  name=name, metrics=True, cgroup=cgroup.path if cgroup else None)
    return node.start()


def view(node, name, request, height=None, timeout=60):
    fields = {"name": name, "request": request}
    if height is not None:
        fields["height"] = height
    return node.indexer.View(h.pb.ViewRequest(**fields), timeout=timeout)


def metric(node, name, **labels):
    """The value of one series on the node's /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_port}/metrics",
                                timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        series_name, _, label_text = series.partition("{")
        if series_name == name and dict(re.findall(r'(\w+)="([^"]*)"', label_text)) == labels:
            return float(value)
    return 0.0


def expect_unavailable(what, call, *args, **kwargs):
    details = h.expect_code(h.grpc.StatusCode.UNAVAILABLE, call, *args, **kwargs)
    print(f"  {what}: UNAVAILABLE ({details[:160]})", flush=True)
    return details


def submit_all(node, first_height, blocks):
    for offset, block in enumerate(blocks):
        node.submit(first_height + offset, block, timeout=120)


def assert_no_oom(cgroup, node):
    assert node.alive(), f"{node.name} died: exit {node.process.returncode}"
    assert cgroup.oom_kills() == 0, f"the kernel OOM-killed in {cgroup.path}"


def assert_same_roots(limited, reference, last):
    ours, theirs = limited.roots(1, last), reference.roots(1, last)
    assert ours == theirs, f"roots differ: {limited.name} {ours} vs {reference.name} {theirs}"


def stop_cleanly(node, cgroup=None):
    code = node.stop()
    assert code == 0, f"{node.name} exited {code} (137 would be the OOM killer)"
    if cgroup is not None:
        assert cgroup.oom_kills() == 0, f"the kernel OOM-killed in {cgroup.path}"


def blocks_scenario(args, work):
    print("blocks: the seed's scenario", flush=True)
    cgroup = h.MemoryCgroup("tandem-budget-blocks", LIMIT)
    reference = start(args, work, "blocks-reference")
    limited = start(args, work, "blocks-limited", cgroup)
    status = limited.status()
    print(f"  limited node: budget {status.host_memory_budget_bytes >> 20} MiB from "
          f"{status.host_memory_budget_source}", flush=True)
    assert "cgroup v1 memory.limit_in_bytes" in status.host_memory_budget_source, status
    log = limited.log_since_start()
    assert re.search(r" W host memory budget \d+ MiB .*0 instances fit at the full cap", log), log
    # The budget is the limit less the headroom less RocksDB's configured caches, and the line
    # says so figure by figure; Admin.Status agrees with it to the byte.
    line = re.search(r"host memory budget (\d+) MiB for guest memory \(cgroup v1 [^:]*: "
                     r"(\d+) MiB less (\d+) MiB headroom for V8 and gRPC, less RocksDB's 8 MiB "
                     r"--db_block_cache and 16 MiB --db_write_buffers\)", log)
    assert line, log
    budget_mib, limit_mib, headroom_mib = map(int, line.groups())
    assert limit_mib == LIMIT >> 20, line.group(0)
    assert 0 < headroom_mib < limit_mib, line.group(0)
    assert status.host_memory_budget_bytes == budget_mib * MiB == \
        LIMIT - headroom_mib * MiB - SMALL_CACHES_BYTES, (status, line.group(0))

    submit_all(reference, 1, ORDINARY + [SEED_BLOCK])
    submit_all(limited, 1, ORDINARY)
    seed_height = len(ORDINARY) + 1
    for attempt in ("the 40 x 64 MiB block", "the same block again"):
        details = expect_unavailable(attempt, limited.submit, seed_height, SEED_BLOCK, timeout=120)
        assert "host memory budget" in details, details
        assert_no_oom(cgroup, limited)
    assert limited.tip() == len(ORDINARY)
    assert limited.health() == 1, "the limited node stopped serving"
    refusals = metric(limited, "tandem_host_memory_refusals_total", call="block", cause="budget")
    assert refusals >= 2, f"refusals of blocks by the budget: {refusals}"
    assert metric(limited, "tandem_host_memory_budget_bytes") == status.host_memory_budget_bytes

    # Views go on: the same answers as the reference at the limited node's tip, and a view that
    # cannot fit is refused as the host's failure, not answered differently.
    tip = limited.tip()
    for request in (stress(1, 1), stress(3, 8)):
        ours = view(limited, "allocate", request).answer
        theirs = view(reference, "allocate", request, height=tip).answer
        assert ours == theirs == f"SUCCESS {struct.unpack('<I', request[:4])[0]}".encode(), (
            ours, theirs)
    expect_unavailable("a view of 40 x 64 MiB", view, limited, "allocate", SEED_BLOCK)
    assert view(reference, "allocate", SEED_BLOCK, height=tip).answer == b"SUCCESS 40"
    assert view(limited, "allocate", stress(1, 1)).answer == b"SUCCESS 1"
    assert metric(limited, "tandem_host_memory_refusals_total", call="view", cause="budget") >= 1
    assert_no_oom(cgroup, limited)
    assert_same_roots(limited, reference, tip)
    print(f"  failcnt {cgroup.value('memory.failcnt')}, max usage "
          f"{cgroup.value('memory.max_usage_in_bytes') >> 20} MiB of {LIMIT >> 20} MiB", flush=True)
    stop_cleanly(limited, cgroup)

    # The operator raises the limit; the retried block commits, and the nodes agree everywhere.
    cgroup.set_limit(3584 * MiB)
    limited = start(args, work, "blocks-limited", cgroup)
    limited.submit(seed_height, SEED_BLOCK, timeout=120)
    submit_all(limited, seed_height + 1, ORDINARY)
    submit_all(reference, seed_height + 1, ORDINARY)
    assert_same_roots(limited, reference, seed_height + len(ORDINARY))
    print(f"  after the limit was raised: equal roots at heights 1..{seed_height + len(ORDINARY)}",
          flush=True)
    stop_cleanly(limited, cgroup)
    stop_cleanly(reference)


def warm_up_scenario(args, work):
    print("warm-up: an init call that fits once but not twice", flush=True)
    cgroup = h.MemoryCgroup("tandem-budget-warm", LIMIT)
    reference = start(args, work, "warm-reference")
    limited = start(args, work, "warm-limited", cgroup)
    budget = limited.status().host_memory_budget_bytes
    count = int(0.6 * budget) // (16 * MiB)
    assert count >= 2, f"a budget of {budget} bytes leaves no room for the scenario"
    submit_all(reference, 1, ORDINARY)
    submit_all(limited, 1, ORDINARY)
    init = h.pb.InitializeRequest(name="init_allocate", payload=stress(count, 16))
    answers = [node.admin.Initialize(init, timeout=120).answer for node in (limited, reference)]
    assert answers[0] == answers[1] == f"SUCCESS {count}".encode(), answers
    print(f"  init call of {count} x 16 MiB answered on both", flush=True)

    deadline = time.time() + 60
    while metric(limited, "tandem_host_memory_refusals_total", call="warm", cause="budget") < 1:
        assert time.time() < deadline, "no warm-up was refused by the budget"
        time.sleep(0.2)
    status = limited.status()
    assert status.consecutive_warm_failures >= 1, status
    next_height = len(ORDINARY) + 1
    reference.submit(next_height, stress(1, 1), timeout=120)
    expect_unavailable("a block with no standby that fits", limited.submit, next_height,
                       stress(1, 1), timeout=120)
    assert limited.health() == 1
    ours = view(limited, "allocate", stress(1, 1)).answer
    theirs = view(reference, "allocate", stress(1, 1), height=len(ORDINARY)).answer
    assert ours == theirs == b"SUCCESS 1", (ours, theirs)
    assert_same_roots(limited, reference, len(ORDINARY))
    assert_no_oom(cgroup, limited)
    stop_cleanly(limited, cgroup)

    cgroup.set_limit(1024 * MiB)
    limited = start(args, work, "warm-limited", cgroup)
    limited.submit(next_height, stress(1, 1), timeout=120)
    assert_same_roots(limited, reference, next_height)
    print(f"  after the limit was raised: equal roots at heights 1..{next_height}", flush=True)
    stop_cleanly(limited, cgroup)
    stop_cleanly(reference)


def override_scenario(args, work):
    print("override: --host_memory_budget beats the cgroup", flush=True)
    cgroup = h.MemoryCgroup("tandem-budget-override", LIMIT)
    big = stress(1, 100)
    derived = start(args, work, "override-derived", cgroup)
    derived.submit(1, big, timeout=120)
    stop_cleanly(derived, cgroup)

    flagged = start(args, work, "override-flag", cgroup, ["--host_memory_budget=64MiB"])
    status = flagged.status()
    assert status.host_memory_budget_bytes == 64 * MiB, status
    assert status.host_memory_budget_source == "--host_memory_budget", status
    assert "host memory budget 64 MiB for guest memory (--host_memory_budget)" in \
        flagged.log_since_start()
    expect_unavailable("100 MiB under a 64 MiB budget", flagged.submit, 1, big, timeout=120)
    flagged.submit(1, stress(1, 16), timeout=120)
    stop_cleanly(flagged, cgroup)


def caches_scenario(args, work):
    print("caches: RocksDB's default caches do not fit a 400 MiB cgroup", flush=True)
    cgroup = h.MemoryCgroup("tandem-budget-caches", LIMIT)
    # No instance can be warmed: the start waits --warm_deadline for one, then serves anyway.
    node = start(args, work, "caches-default", cgroup, flags=["--warm_deadline=2s"], caches=[])
    status = node.status()
    assert status.host_memory_budget_bytes == 0, status
    assert "cgroup v1 memory.limit_in_bytes" in status.host_memory_budget_source, status
    log = node.log_since_start()
    warning = re.search(r" W host memory budget 0 MiB .*", log)
    assert warning, log
    for named in ("less RocksDB's 256 MiB --db_block_cache and 256 MiB --db_write_buffers",
                  "until RocksDB's caches shrink (--db_block_cache 256 MiB, "
                  "--db_write_buffers 256 MiB)"):
        assert named in warning.group(0), (named, warning.group(0))
    print(f"  {warning.group(0)[3:200]}...", flush=True)
    details = expect_unavailable("a block of 1 x 1 MiB", node.submit, 1, stress(1, 1), timeout=60)
    assert "host memory budget" in details, details
    stop_cleanly(node, cgroup)


def main():
    args = h.common_args(__doc__)
    started = time.time()
    try:
        h.MemoryCgroup("tandem-budget-probe", LIMIT).remove()
    except h.CgroupUnavailable as why:
        print(f"SKIPPED: {why}; this suite needs a writable cgroup v1 memory controller",
              flush=True)
        sys.exit(SKIPPED)
    work = h.WorkDir("tandem-memory-budget-", args.keep)
    blocks_scenario(args, work)
    warm_up_scenario(args, work)
    override_scenario(args, work)
    caches_scenario(args, work)
    h.report("memory_budget_test", started)


if __name__ == "__main__":
    main()
