#!/usr/bin/python3
"""Faults suite: every misbehaving guest gets its documented status, nothing of the failed call
commits, and the service stays healthy (grpc.health.v1 SERVING, Admin.Status readable, the next
call works).

One tandemd per guest (--swap_policy=block, unless noted):
  trapping        `unreachable`              -> ABORTED (message names the trap)
  aborting        abort("guest gave up ...") -> ABORTED with the guest's message
  runaway         endless loop, --block_deadline=1s -> DEADLINE_EXCEEDED "... past its deadline"
                  (in about a second)
  malformed_flush a flush that claims 16 bytes and has 2 -> ABORTED
  no_flush        returns without a flush    -> ABORTED
  leaky           Admin.Initialize init_runaway, --init_deadline=1s -> DEADLINE_EXCEEDED; nothing
                  enters the replay log; init_ok and a block work afterwards
  reads_and_writes (every policy): a block that writes and then passes a bad pointer (op 5) ->
                  ABORTED naming __get_len and the pointer, and none of its writes commit; the next good block commits at that same
                  height; also through StreamBlocks (the stream ends with the block's status, its
                  message starting "block at height N: ").
Each failing guest gets the failing block twice (a replaced instance fails the same way), and
after each failure: tip unchanged, health SERVING, Status readable, and (where the module has one)
a good call succeeds.

Usage: faults_test.py --tandemd PATH --stubs DIR --guests DIR
"""
import time

import harness as h

C = None  # grpc.StatusCode, set in main


def healthy(node):
    assert node.health() == 1, f"{node.name}: health is not SERVING"
    status = node.status()
    assert status.module_path.endswith(".wasm"), status
    return status


def expect_block_failure(node, height, block, code, fragment, max_seconds=None):
    assert fragment, "name a fragment of the expected message: '' is in every message"
    t0 = time.time()
    tip_before = node.tip()
    details = h.expect_code(code, node.submit, height, block, timeout=60)
    elapsed = time.time() - t0
    assert fragment in details, f"{node.name}: '{fragment}' not in '{details}'"
    if max_seconds is not None:
        assert elapsed < max_seconds, f"{node.name}: the failure took {elapsed:.1f} s"
    assert node.tip() == tip_before, f"{node.name}: a failed block moved the tip"
    healthy(node)
    return details, elapsed


def main():
    global C
    args = h.common_args(__doc__)
    C = h.grpc.StatusCode
    started = time.time()
    work = h.WorkDir("tandem-faults-", args.keep)

    def node(guest, *flags, policy="block"):
        name = f"{guest}-{policy}"
        return h.Node(args.tandemd, f"{args.guests}/{guest}.wasm", work(f"{name}-db"),
                      work(f"{name}.log"), ["--fsync=false", f"--swap_policy={policy}", *flags],
                      name=name).start()

    cases = [
        ("trapping", [], C.ABORTED, "unreachable"),
        ("aborting", [], C.ABORTED, "guest gave up on purpose"),
        ("runaway", ["--block_deadline=1s"], C.DEADLINE_EXCEEDED, "past its deadline"),
        ("malformed_flush", [], C.ABORTED, "flush"),
        ("no_flush", [], C.ABORTED, "flush"),
    ]
    for guest, flags, code, fragment in cases:
        n = node(guest, *flags)
        for attempt in range(2):
            details, elapsed = expect_block_failure(
                n, 1, b"", code, fragment,
                max_seconds=5 if code == C.DEADLINE_EXCEEDED else None)
        if guest == "runaway":
            # The instance that ran past its deadline was replaced: an init call still works.
            answer = n.admin.Initialize(h.pb.InitializeRequest(name="init_ok"), timeout=30)
            assert answer.answer == b"ok", answer
        print(f"{guest}: {code.name} twice ({elapsed:.2f} s): {details[:100]}", flush=True)
        assert n.stop() == 0

    # A runaway init call.
    n = node("leaky", "--init_deadline=1s")
    t0 = time.time()
    details = h.expect_code(C.DEADLINE_EXCEEDED, n.admin.Initialize,
                            h.pb.InitializeRequest(name="init_runaway"), timeout=30)
    assert time.time() - t0 < 5, "the init deadline was not enforced"
    status = healthy(n)
    assert status.replay_log_calls == 0, "a failed init call entered the replay log"
    assert n.admin.Initialize(h.pb.InitializeRequest(name="init_ok"), timeout=30).answer == b"ok"
    response = n.submit(1, b"\x10\x00\x00\x00")
    assert response.block.height == 1
    assert healthy(n).replay_log_calls == 1
    print(f"leaky init_runaway: DEADLINE_EXCEEDED: {details[:100]}; init_ok and a block commit",
          flush=True)
    assert n.stop() == 0

    # A failing block, then a good block at the same height, on every policy.
    for policy in ("block", "threshold", "none", "sync"):
        n = node("reads_and_writes", policy=policy)
        good1 = h.rw_ops((1, b"a", b"1"))
        n.submit(1, good1)
        bad = h.rw_ops((1, b"b", b"2"), (1, b"a", b"changed"), (5, b"x", b""))
        # Op 5 passes the key pointer 0xFFFFFFF0 to __get_len: the error names the call and the
        # pointer, every time (a replaced instance fails the same way).
        bad_pointer = "__get_len: key pointer 4294967280"
        details, _ = expect_block_failure(n, 2, bad, C.ABORTED, bad_pointer)
        details_again, _ = expect_block_failure(n, 2, bad, C.ABORTED, bad_pointer)
        good2 = h.rw_ops((2, b"a", b""), (1, b"c", b"3"))
        response = n.submit(2, good2)
        root = h.next_root(h.next_root(b"\x00" * 32, 1, {b"a": b"1"}), 2,
                           {b"a/read": b"1", b"c": b"3"})
        assert bytes(response.block.state_root) == root, "the failed block's writes leaked"
        view = n.indexer.View(h.pb.ViewRequest(name="read", request=b"b"), timeout=30)
        assert view.answer == b"" and view.height == 2, view

        # Through StreamBlocks: blocks 3 and 4 commit, 5 fails, 6 never runs.
        blocks = [h.rw_ops((1, b"d", b"4")), h.rw_ops((1, b"e", b"5")), bad, good1]
        responses = []
        try:
            for r in n.indexer.StreamBlocks(iter(
                    h.pb.SubmitBlockRequest(height=3 + i, block=b) for i, b in enumerate(blocks)),
                    timeout=60):
                responses.append(r.block.height)
            raise AssertionError("the stream did not fail")
        except h.grpc.RpcError as error:
            assert error.code() == C.ABORTED, error
            assert error.details().startswith("block at height 5: "), error.details()
            assert bad_pointer in error.details(), error.details()
        assert responses == [3, 4] and n.tip() == 4, (responses, n.tip())
        assert n.submit(5, good1).block.height == 5
        healthy(n)
        print(f"reads_and_writes ({policy}): bad pointer ABORTED ({details[:80]}), "
              f"then good blocks commit", flush=True)
        assert n.stop() == 0
    h.report("faults_test", started)


if __name__ == "__main__":
    main()
