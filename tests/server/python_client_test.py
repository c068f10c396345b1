#!/usr/bin/python3
"""An independent client for tandemd: Python's grpcio (Debian's python3-grpcio), not this
project's C++. It starts tandemd, submits the real fixture blocks through StreamBlocks, checks a
view against the fixtures' independently computed figures, forces a swap and reads the status.

Stubs come from protoc + grpc_python_plugin at build time (proto/CMakeLists.txt).
Usage: python_client_test.py --tandemd PATH --stubs DIR --module WASM --blocks JSON
"""
import argparse
import json
import os
import shutil
import signal
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tandemd_process  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandemd", required=True)
    parser.add_argument("--stubs", required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--blocks", required=True)
    args = parser.parse_args()

    sys.path.insert(0, args.stubs)
    import grpc
    from tandem.v1 import tandem_pb2, tandem_pb2_grpc

    with open(args.blocks) as f:
        fixtures = json.load(f)

    workdir = tempfile.mkdtemp(prefix="tandem-python-")
    log_path = os.path.join(workdir, "tandemd.log")
    port_file = os.path.join(workdir, "ports")
    with open(log_path, "w") as log:
        daemon = tandemd_process.spawn(tandemd_process.command(
            args.tandemd, port_file,
            [f"--module={args.module}", f"--db={workdir}/db", "--fsync=false",
             "--swap_policy=none"]), log)
    try:
        addresses = tandemd_process.wait_for_ports(daemon, port_file,
                                                   describe=lambda: open(log_path).read()[-3000:])
        port = tandemd_process.port(addresses["listen"])
        admin_port = tandemd_process.port(addresses["admin_listen"])
        options = [("grpc.max_send_message_length", -1),
                   ("grpc.max_receive_message_length", -1)]
        indexer = tandem_pb2_grpc.IndexerStub(
            grpc.insecure_channel(f"127.0.0.1:{port}", options=options))
        admin = tandem_pb2_grpc.AdminStub(
            grpc.insecure_channel(f"127.0.0.1:{admin_port}", options=options))

        # Every fixture block, streamed at heights 1..N.
        def requests():
            for i, block in enumerate(fixtures):
                yield tandem_pb2.SubmitBlockRequest(height=i + 1,
                                                    block=bytes.fromhex(block["hex"]))
        heights = [r.block.height for r in indexer.StreamBlocks(requests(), timeout=300)]
        assert heights == list(range(1, len(fixtures) + 1)), heights

        tip = indexer.GetTip(tandem_pb2.GetTipRequest(), timeout=30)
        assert tip.tip.height == len(fixtures), tip
        assert len(tip.tip.state_root) == 32

        # block_summary of every block: tx count, output count, output sum, block id.
        for i, block in enumerate(fixtures):
            answer = indexer.View(tandem_pb2.ViewRequest(
                name="block_summary", request=struct.pack("<I", i + 1)), timeout=30)
            assert answer.height == len(fixtures)
            tx_count, output_count, output_sum = struct.unpack_from("<IIQ", answer.answer)
            assert tx_count == block["tx_count"], (i, tx_count, block["tx_count"])
            assert output_count == block["output_count"]
            assert output_sum == block["output_sum_sat"]
            assert answer.answer[16:48][::-1].hex() == block["id"]

        # A view at a past height does not see later blocks.
        past = indexer.View(tandem_pb2.ViewRequest(
            name="block_summary", height=3, request=struct.pack("<I", 4)), timeout=30)
        assert past.height == 3 and past.answer == b"", past

        # Errors arrive as gRPC statuses.
        try:
            indexer.View(tandem_pb2.ViewRequest(name="no_such_view"), timeout=30)
            raise AssertionError("unknown view answered")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, error
        try:
            indexer.SubmitBlock(tandem_pb2.SubmitBlockRequest(height=len(fixtures) + 5,
                                                              block=b"x"), timeout=30)
            raise AssertionError("a gap was accepted")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error

        # Admin is not on the public listener.
        try:
            tandem_pb2_grpc.AdminStub(grpc.insecure_channel(f"127.0.0.1:{port}")).Status(
                tandem_pb2.StatusRequest(), timeout=30)
            raise AssertionError("Admin answered on the public listener")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED, error

        # Server reflection lists the services on each listener. The request is encoded by hand
        # (ServerReflectionRequest field 7, list_services = ""), so no reflection package is needed.
        for listener, expected in ((port, b"tandem.v1.Indexer"), (admin_port, b"tandem.v1.Admin")):
            channel = grpc.insecure_channel(f"127.0.0.1:{listener}")
            reflect = channel.stream_stream(
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
            replies = list(reflect(iter([b"\x3a\x00"]), timeout=30))
            assert len(replies) == 1 and expected in replies[0], replies
            assert b"grpc.health.v1.Health" in replies[0], replies
            channel.close()

        # A forced swap, seen in the status.
        before = admin.Status(tandem_pb2.StatusRequest(), timeout=30)
        assert before.policy == tandem_pb2.SWAP_POLICY_NONE
        swap = admin.Swap(tandem_pb2.SwapRequest(), timeout=60)
        assert swap.generation != swap.previous_generation, swap  # another instance
        after = admin.Status(tandem_pb2.StatusRequest(), timeout=30)
        assert after.active.present and after.active.generation == swap.generation, after
        assert after.tip_height == len(fixtures)
        print(f"ok: {len(fixtures)} blocks, swap {swap.previous_generation} -> "
              f"{swap.generation} (pause {swap.pause.nanos} ns)")
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)
    assert code == 0, f"tandemd exited {code}"


if __name__ == "__main__":
    main()
