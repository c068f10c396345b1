#!/usr/bin/python3
"""Crash suite: tandemd is SIGKILLed under steady ingest and restarted on the same database.

What it proves (docs/design.md, "Storage and the state root"): a block commits in one WAL-synced WriteBatch, so a crash
leaves no trace of a block or all of it, and nothing that was acknowledged is ever lost.

1. A reference tandemd (fresh database, --fsync=true) is fed the whole chain (the fixture blocks,
   then deterministic synthetic Bitcoin blocks whose transactions spend earlier outputs) with
   StreamBlocks; its hash and state root at every height are recorded.
2. A second tandemd (--fsync=true) is started on its own database, and a client thread ingests
   the chain from the last acknowledged height + 1 (so blocks that committed without their answer
   reaching the client are resubmitted and must come back `already_committed`), alternating unary
   SubmitBlock and pipelined StreamBlocks (at most 32 blocks unanswered, so the highest height
   sent stays a tight bound) between runs. At a random moment (0-600 ms into the
   ingest, so kills land in the middle of guest calls, commits and answers) the process gets
   SIGKILL. This repeats 20 times.
3. After every restart: the tip is at least the highest acknowledged height (nothing acknowledged
   is lost) and at most the highest height sent; every height committed since the previous
   restart has the reference's hash and root (so no partial block survived).
4. At the end the rest of the chain is fed, and GetBlock at every height equals the reference.

Usage: crash_test.py --tandemd PATH --stubs DIR --guests DIR --blocks JSON [--kills 20] [--seed N]
"""
import random
import threading
import time

import harness as h

IN_FLIGHT = 32  # blocks a stream may have sent and not yet seen answered


def main():
    args = h.common_args(__doc__, lambda p: (p.add_argument("--kills", type=int, default=20),
                                             p.add_argument("--chain", type=int, default=2500)),
                         seeded=True)
    started = time.time()
    seed = args.seed
    rng = random.Random(seed)
    work = h.WorkDir("tandem-crash-", args.keep)
    module = f"{args.guests}/bitcoin_indexer.wasm"
    chain = h.mixed_chain(args.chain, args.blocks, seed=seed)
    flags = ["--fsync=true", "--swap_policy=block"]

    # 1. The reference run.
    reference_node = h.Node(args.tandemd, module, work("reference-db"), work("reference.log"),
                            flags, name="reference").start()
    responses = reference_node.stream(chain, 1, timeout=600)
    assert [r.block.height for r in responses] == list(range(1, len(chain) + 1))
    reference = {r.block.height: (bytes(r.block.hash), bytes(r.block.state_root))
                 for r in responses}
    for height in (1, len(chain) // 2, len(chain)):  # what GetBlock says is what was answered
        record = reference_node.block(height)
        assert (bytes(record.hash), bytes(record.state_root)) == reference[height]
    assert reference_node.stop() == 0
    print(f"reference: {len(chain)} blocks in {time.time() - started:.1f} s", flush=True)

    # 2. Ingest and kill, 20 times.
    node = h.Node(args.tandemd, module, work("crash-db"), work("crash.log"), flags, name="crash")
    acked = 0          # highest height whose SubmitBlock/StreamBlocks answer was OK
    sent = 0           # highest height sent
    checked = 0        # heights 1..checked were compared with the reference
    resubmitted_committed = 0
    restart_seconds = []

    for kill in range(args.kills + 1):
        t0 = time.time()
        node.start()
        restart_seconds.append(time.time() - t0)
        tip = node.tip() or 0
        assert tip >= acked, f"restart {kill}: tip {tip} below the acknowledged height {acked}"
        assert tip <= sent, f"restart {kill}: tip {tip} above the highest height sent {sent}"
        for height in range(checked + 1, tip + 1):
            record = node.block(height)
            assert (bytes(record.hash), bytes(record.state_root)) == reference[height], (
                f"restart {kill}: height {height} differs from the reference")
        checked = tip
        if kill == args.kills or acked >= len(chain):
            break

        state = {"acked": acked, "sent": sent, "already": 0, "error": None}
        use_stream = kill % 2 == 1
        # Set just before the SIGKILL: a call may fail because of the kill only after it.
        killed = threading.Event()
        # grpcio takes requests from the iterator as fast as it can buffer them, so without a
        # window the whole chain counts as sent at once and `tip <= sent` checks nothing. The
        # stream keeps at most IN_FLIGHT blocks unanswered (still pipelined: the server reads
        # ahead while a block runs).
        window = threading.Condition()

        def ingest():
            first = state["acked"] + 1
            try:
                if use_stream:
                    def on_request(height):
                        with window:
                            window.wait_for(lambda: height <= state["acked"] + IN_FLIGHT
                                            or killed.is_set(), timeout=60)
                            state["sent"] = max(state["sent"], height)

                    def on_response(response):
                        with window:
                            state["acked"] = response.block.height
                            state["already"] += response.already_committed
                            window.notify_all()
                    batch = chain[first - 1:]
                    node.stream(batch, first, timeout=120, on_response=on_response,
                                on_request=on_request)
                else:
                    for height in range(first, len(chain) + 1):
                        state["sent"] = max(state["sent"], height)
                        response = node.submit(height, chain[height - 1], timeout=60)
                        assert response.block.height == height
                        assert bytes(response.block.state_root) == reference[height][1]
                        state["acked"] = height
                        state["already"] += response.already_committed
            except h.grpc.RpcError as error:
                # The kill breaks the connection (UNAVAILABLE) or closes the channel under the
                # call (CANCELLED). Any other code, or any error before the kill, is a failure.
                if not killed.is_set() or error.code() not in (h.grpc.StatusCode.UNAVAILABLE,
                                                               h.grpc.StatusCode.CANCELLED):
                    state["error"] = (f"{error.code().name}: {error.details()} "
                                      f"({'after' if killed.is_set() else 'before'} the kill)")
            except ValueError as error:
                # The kill closes the node's channels; a call started just after that is refused
                # by grpcio itself with "Cannot invoke RPC on closed channel!": the kill, not a
                # failure of tandemd.
                if not killed.is_set() or "closed channel" not in str(error):
                    state["error"] = repr(error)
            except Exception as error:  # noqa: BLE001 - reported below
                state["error"] = repr(error)

        thread = threading.Thread(target=ingest, daemon=True)
        thread.start()
        time.sleep(rng.uniform(0.0, 0.6))
        killed.set()
        node.kill()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the ingest thread hung after the kill"
        assert state["error"] is None, f"kill {kill + 1}: ingest failed: {state['error']}"
        print(f"kill {kill + 1:2d}: acknowledged {acked} -> {state['acked']}, sent up to "
              f"{state['sent']} ({'stream' if use_stream else 'unary'}; {state['already']} "
              "already committed)", flush=True)
        acked = state["acked"]
        sent = state["sent"]
        resubmitted_committed += state["already"]

    # 4. The rest of the chain, then every height against the reference.
    tip = node.tip() or 0
    if tip < len(chain):
        node.stream(chain[tip:], tip + 1, timeout=600)
    assert node.tip() == len(chain)
    for height in range(1, len(chain) + 1):
        record = node.block(height)
        assert (bytes(record.hash), bytes(record.state_root)) == reference[height], (
            f"height {height} differs from the reference after the kills")
    got = node.indexer.GetTip(h.pb.GetTipRequest(), timeout=30)
    assert got.start_height == 1, got
    assert node.stop() == 0
    print(f"{args.kills} kills; {len(chain)} heights equal the reference; "
          f"{resubmitted_committed} resubmitted blocks were already committed; restart "
          f"{min(restart_seconds):.2f}-{max(restart_seconds):.2f} s", flush=True)
    h.report("crash_test", started)


if __name__ == "__main__":
    main()
