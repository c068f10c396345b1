#!/usr/bin/python3
"""The launcher never deadlocks: children are started while other threads make gRPC calls.

grpcio joins its executor threads in a pthread_atfork handler; a fork() that runs Python code in
the child (subprocess's preexec_fn) while a gRPC callback waits for the GIL hangs forever inside
subprocess.Popen. That hung the two-node suite until ctest's 300 s timeout. This test starts a
tandemd with tandemd_process.spawn, keeps three threads calling it, and spawns 600 short children
through the same function: with a preexec_fn it hangs within a few hundred (the C-level watchdog
then fails the test); through spawn it finishes in seconds.

Usage: tandemd_process_test.py --tandemd PATH --stubs DIR
"""
import argparse
import faulthandler
import os
import shutil
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tandemd_process  # noqa: E402

SPAWNS = 600
WATCHDOG_SECONDS = 60  # C-level: fires even while a thread holds the GIL in fork().


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tandemd", required=True)
    parser.add_argument("--stubs", required=True)
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)
    import grpc
    from tandem.v1 import tandem_pb2, tandem_pb2_grpc

    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    work = tempfile.mkdtemp(prefix="tandem-launcher-")
    try:
        port_file = os.path.join(work, "ports")
        with open(os.path.join(work, "log"), "w") as log:
            daemon = tandemd_process.spawn(
                tandemd_process.command(args.tandemd, port_file,
                                        [f"--db={work}/db", "--fsync=false"], metrics=False), log)
        addresses = tandemd_process.wait_for_ports(daemon, port_file)
        stop = threading.Event()
        calls = [0, 0, 0]

        def call_repeatedly(index):
            with grpc.insecure_channel(addresses["listen"]) as channel:
                stub = tandem_pb2_grpc.IndexerStub(channel)
                while not stop.is_set():
                    stub.GetTip(tandem_pb2.GetTipRequest(), timeout=10)
                    calls[index] += 1

        threads = [threading.Thread(target=call_repeatedly, args=(i,), daemon=True)
                   for i in range(3)]
        for thread in threads:
            thread.start()
        for _ in range(SPAWNS):
            child = tandemd_process.spawn(["/bin/true"], open(os.devnull, "w"))
            assert child.wait(timeout=30) == 0
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert all(c > 0 for c in calls), f"a calling thread made no call: {calls}"
        daemon.terminate()
        assert daemon.wait(timeout=60) == 0
        print(f"ok: {SPAWNS} children started while {sum(calls)} gRPC calls ran", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
