#!/usr/bin/python3
"""Bad-input suite: every RPC with empty, malformed, oversized and out-of-range fields gets the
status proto/tandem/v1/tandem.proto documents; an invalid module or database at start-up makes
tandemd exit 1 with a message naming the problem; a bad flag value makes it exit 2. After all of
it the node is healthy and its chain is what the good calls made.

Node: reads_and_writes, --max_message_bytes=64KiB (so "oversized" is cheap), --swap_policy=block.
  INVALID_ARGUMENT     hash or prev_hash neither empty nor 32 bytes (31, 33); empty view name;
                       empty init name; a negative swap wait
  FAILED_PRECONDITION  height above tip+1 (and 2^32-1); a committed height with another hash;
                       a prev_hash that is not the parent's; rollback above the tip
  NOT_FOUND            GetBlock of a height not committed (0 on an empty store, tip+1, 2^32-1);
                       an unknown view export; a non-function export (`memory`); a view above
                       the tip; Initialize of a missing export
  RESOURCE_EXHAUSTED   a block, view request or init payload above --max_message_bytes (unary
                       and through StreamBlocks)
  ABORTED              a block the guest refuses (unknown op, truncated op)
  UNAUTHENTICATED      a --token node called without or with the wrong token
  UNIMPLEMENTED        Admin on the public listener
  a request that is not protobuf: INTERNAL or INVALID_ARGUMENT (gRPC's own parse failure)
Also: height 0 on an empty store is a valid start height; resubmitting a committed block returns
`already_committed`; rollback to the tip is a no-op.
Start-up: unknown_import.wasm (names `__bogus_host_function`), a non-wasm file, a missing file,
a --db that is a file -> exit 1 with the problem named; bad flag values -> exit 2.

Usage: bad_input_test.py --tandemd PATH --stubs DIR --guests DIR
"""
import subprocess
import time

import harness as h

KiB = 1024


def main():
    args = h.common_args(__doc__)
    C = h.grpc.StatusCode
    pb = h.pb
    expect = h.expect_code
    started = time.time()
    work = h.WorkDir("tandem-bad-input-", args.keep)
    module = f"{args.guests}/reads_and_writes.wasm"
    checks = [0]

    def check(code, call, *a, **kw):
        checks[0] += 1
        return expect(code, call, *a, timeout=30, **kw)

    node = h.Node(args.tandemd, module, work("db"), work("tandemd.log"),
                  ["--fsync=false", "--max_message_bytes=64KiB"], name="bad-input").start()
    ix, admin = node.indexer, node.admin

    # --- An empty store.
    tip = ix.GetTip(pb.GetTipRequest(), timeout=30)
    assert not tip.HasField("tip") and not tip.HasField("start_height"), tip
    check(C.NOT_FOUND, ix.GetBlock, pb.GetBlockRequest())
    check(C.NOT_FOUND, ix.GetBlock, pb.GetBlockRequest(height=1))
    check(C.FAILED_PRECONDITION, ix.Rollback, pb.RollbackRequest(height=5))
    empty_view = None
    try:
        ix.View(pb.ViewRequest(name="echo"), timeout=30)
    except h.grpc.RpcError as error:
        empty_view = error.code()
    assert empty_view in (C.NOT_FOUND, C.FAILED_PRECONDITION, C.UNAVAILABLE), empty_view

    # --- SubmitBlock.
    good = h.rw_ops((1, b"k", b"v"))
    for field in ("hash", "prev_hash"):
        for size in (31, 33, 1):
            details = check(C.INVALID_ARGUMENT, node.submit, 1, good, **{field: b"\x01" * size})
            assert field in details, details
    check(C.RESOURCE_EXHAUSTED, node.submit, 1, b"\x00" * (80 * KiB))
    check(C.ABORTED, node.submit, 1, b"\x09" + good[1:])             # unknown op
    check(C.ABORTED, node.submit, 1, good[:-1])                       # truncated op
    assert node.tip() is None, "a refused block committed"
    first = node.submit(1, good)
    assert first.block.height == 1 and not first.already_committed
    again = node.submit(1, good)
    assert again.already_committed and again.block.state_root == first.block.state_root
    check(C.FAILED_PRECONDITION, node.submit, 1, h.rw_ops((1, b"k", b"other")))
    check(C.FAILED_PRECONDITION, node.submit, 3, good)
    check(C.FAILED_PRECONDITION, node.submit, 0xFFFFFFFF, good)
    check(C.FAILED_PRECONDITION, node.submit, 2, good, prev_hash=b"\x02" * 32)
    second = node.submit(2, good, prev_hash=first.block.hash)
    assert second.block.height == 2
    third = node.submit(3, h.rw_ops((1, b"x", b"y")), hash=b"\x33" * 32)
    assert third.block.hash == b"\x33" * 32

    # Through StreamBlocks: an oversized block ends the stream; the ones before it commit.
    requests = [pb.SubmitBlockRequest(height=4, block=good),
                pb.SubmitBlockRequest(height=5, block=b"\x00" * (80 * KiB))]
    answered = []
    try:
        for response in ix.StreamBlocks(iter(requests), timeout=30):
            answered.append(response.block.height)
        raise AssertionError("an oversized block was streamed")
    except h.grpc.RpcError as error:
        assert error.code() == C.RESOURCE_EXHAUSTED, (error.code(), error.details())
    checks[0] += 1
    # gRPC refuses the oversized message in the transport and cancels the call, so block 4 (read
    # before it) may still commit after the client saw the error: wait for the tip to settle.
    tip_height = node.tip()
    for _ in range(20):
        time.sleep(0.05)
        tip_height, previous = node.tip(), tip_height
        if tip_height == previous:
            break
    assert answered == [4][:len(answered)] and tip_height in (3, 4), (answered, tip_height)
    try:  # a stream of one block with a bad hash
        list(ix.StreamBlocks(iter([pb.SubmitBlockRequest(height=tip_height + 1, block=good,
                                                         hash=b"\x01" * 31)]), timeout=30))
        raise AssertionError("a 31-byte hash was streamed")
    except h.grpc.RpcError as error:
        assert error.code() == C.INVALID_ARGUMENT, error
        assert error.details().startswith(f"block at height {tip_height + 1}: "), error.details()
    checks[0] += 1

    # A request that is not protobuf at all.
    raw = node.indexer_channel.unary_unary("/tandem.v1.Indexer/SubmitBlock",
                                           request_serializer=lambda b: b,
                                           response_deserializer=lambda b: b)
    try:
        raw(b"\xff\xff\xff\xff\x0f", timeout=30)
        raise AssertionError("garbage was accepted")
    except h.grpc.RpcError as error:
        assert error.code() in (C.INTERNAL, C.INVALID_ARGUMENT), error
        garbage_code = error.code().name
    checks[0] += 1

    # --- GetBlock, Rollback.
    check(C.NOT_FOUND, ix.GetBlock, pb.GetBlockRequest(height=0))
    check(C.NOT_FOUND, ix.GetBlock, pb.GetBlockRequest(height=tip_height + 1))
    check(C.NOT_FOUND, ix.GetBlock, pb.GetBlockRequest(height=0xFFFFFFFF))
    check(C.FAILED_PRECONDITION, ix.Rollback, pb.RollbackRequest(height=tip_height + 1))
    check(C.FAILED_PRECONDITION, ix.Rollback, pb.RollbackRequest(height=0xFFFFFFFF))
    same = ix.Rollback(pb.RollbackRequest(height=tip_height), timeout=30)
    assert same.tip.height == tip_height

    # --- View.
    check(C.INVALID_ARGUMENT, ix.View, pb.ViewRequest(name=""))
    check(C.NOT_FOUND, ix.View, pb.ViewRequest(name="no_such_export"))
    check(C.NOT_FOUND, ix.View, pb.ViewRequest(name="memory"))
    check(C.NOT_FOUND, ix.View, pb.ViewRequest(name="echo", height=tip_height + 1))
    check(C.NOT_FOUND, ix.View, pb.ViewRequest(name="echo", height=0xFFFFFFFF))
    check(C.NOT_FOUND, ix.View, pb.ViewRequest(name="echo", height=0))  # below the start
    check(C.RESOURCE_EXHAUSTED, ix.View, pb.ViewRequest(name="echo", request=b"e" * (80 * KiB)))
    for bad_view in ("bad_get_pointer", "bad_log_pointer", "bad_load_input",
                     "bad_answer_pointer", "bad_flush_pointer"):
        check(C.ABORTED, ix.View, pb.ViewRequest(name=bad_view))
    echo = ix.View(pb.ViewRequest(name="echo", request=b"e" * (60 * KiB)), timeout=30)
    assert echo.answer == b"e" * (60 * KiB) and echo.height == tip_height
    past = ix.View(pb.ViewRequest(name="height", height=1), timeout=30)
    assert past.height == 1 and past.answer == b"\x01\x00\x00\x00", past

    # --- Admin.
    check(C.INVALID_ARGUMENT, admin.Initialize, pb.InitializeRequest(name=""))
    check(C.NOT_FOUND, admin.Initialize, pb.InitializeRequest(name="no_such_export"))
    check(C.NOT_FOUND, admin.Initialize, pb.InitializeRequest(name="memory"))
    check(C.RESOURCE_EXHAUSTED, admin.Initialize,
          pb.InitializeRequest(name="echo", payload=b"p" * (80 * KiB)))
    wait = pb.SwapRequest()
    wait.wait.seconds = -1
    check(C.INVALID_ARGUMENT, admin.Swap, wait)
    wait.wait.seconds, wait.wait.nanos = 0, -5
    check(C.INVALID_ARGUMENT, admin.Swap, wait)
    check(C.UNIMPLEMENTED, h.pb_grpc.AdminStub(node.indexer_channel).Status, pb.StatusRequest())
    health_unknown = None
    try:
        node.health("no.such.Service")
    except h.grpc.RpcError as error:
        health_unknown = error.code()
    assert health_unknown == C.NOT_FOUND, health_unknown
    status = node.status()
    assert status.replay_log_calls == 0 and status.tip_height == tip_height, status
    assert node.health() == 1

    # Everything refused left the chain as the good calls made it.
    root = b"\x00" * 32
    root = h.next_root(root, 1, {b"k": b"v"})
    root = h.next_root(root, 2, {b"k": b"v"})
    root = h.next_root(root, 3, {b"x": b"y"})
    if tip_height == 4:
        root = h.next_root(root, 4, {b"k": b"v"})
    assert bytes(node.block(tip_height).state_root) == root, "the chain is not what was accepted"
    assert node.stop() == 0
    print(f"{checks[0]} refused calls got their documented status (garbage request: "
          f"{garbage_code}; view on an empty store: {empty_view.name})", flush=True)

    # --- Height 0 on an empty store is a valid start height.
    zero = h.Node(args.tandemd, module, work("zero-db"), work("zero.log"), ["--fsync=false"],
                  name="zero").start()
    response = zero.indexer.SubmitBlock(pb.SubmitBlockRequest(), timeout=30)
    assert response.block.height == 0, response
    got = zero.indexer.GetTip(pb.GetTipRequest(), timeout=30)
    assert got.tip.height == 0 and got.HasField("start_height") and got.start_height == 0, got
    assert zero.submit(1, b"").block.height == 1
    assert zero.stop() == 0

    # --- Tokens.
    secured = h.Node(args.tandemd, module, work("token-db"), work("token.log"),
                     ["--fsync=false", "--token=s3cret", "--admin_token=adm1n"],
                     name="token").start()
    check(C.UNAUTHENTICATED, secured.indexer.GetTip, pb.GetTipRequest())
    check(C.UNAUTHENTICATED, secured.indexer.GetTip, pb.GetTipRequest(),
          metadata=[("authorization", "Bearer wrong")])
    check(C.UNAUTHENTICATED, secured.admin.Status, pb.StatusRequest(),
          metadata=[("authorization", "Bearer s3cret")])
    secured.indexer.GetTip(pb.GetTipRequest(), timeout=30,
                           metadata=[("authorization", "Bearer s3cret")])
    secured.admin.Status(pb.StatusRequest(), timeout=30,
                         metadata=[("authorization", "Bearer adm1n")])
    assert secured.stop() == 0

    # --- Start-up failures: exit 1 with the problem named.
    not_wasm = work("not_a_module.wasm")
    with open(not_wasm, "w") as f:
        f.write("this is not WebAssembly\n")
    db_file = work("db_is_a_file")
    with open(db_file, "w") as f:
        f.write("x")
    base = ["--listen=127.0.0.1:0", "--admin_listen=127.0.0.1:0", "--metrics_listen="]
    startup_cases = [
        ([f"--module={args.guests}/unknown_import.wasm", f"--db={work('db1')}"], 1,
         ["__bogus_host_function"]),
        ([f"--module={not_wasm}", f"--db={work('db2')}"], 1, ["not_a_module.wasm"]),
        ([f"--module={work('missing.wasm')}", f"--db={work('db3')}"], 1, ["missing.wasm"]),
        ([f"--module={module}", f"--db={db_file}"], 1, ["db_is_a_file"]),
    ]
    bad_flags = [
        ["--swap_policy=bogus"], ["--memory_limit=lots"], ["--memory_limit=5GiB"],
        ["--memory_limit=-1"], ["--warm_at=2"], ["--warm_at=0.9", "--swap_at=0.5"],
        ["--warm_at=abc"], ["--block_deadline=abc"], ["--block_deadline=-1s"],
        ["--max_message_bytes=10"], ["--fsync=maybe"], ["--no_such_flag=1"],
        ["positional_argument"], ["--tls_cert=/nonexistent.pem"],
    ]
    for flags in bad_flags:
        startup_cases.append(([f"--module={module}", f"--db={work('db4')}", *flags], 2,
                              [flags[-1].split("=")[0].lstrip("-")]))
    for flags, code, fragments in startup_cases:
        result = subprocess.run(h.tandemd_process.guarded([args.tandemd, *base, *flags]),
                                capture_output=True, text=True, timeout=60)
        output = result.stdout + result.stderr
        assert result.returncode == code, (
            f"{flags}: exit {result.returncode}, expected {code}:\n{output[-2000:]}")
        for fragment in fragments:
            assert fragment in output, f"{flags}: '{fragment}' not in:\n{output[-2000:]}"
        print(f"exit {code}: {' '.join(flags[2:] if code == 2 else flags[:1])}: "
              f"{output.strip().splitlines()[-1][:140]}", flush=True)
    h.report("bad_input_test", started)


if __name__ == "__main__":
    main()
