"""Shared harness of the reliability suites: tandemd as a child process, the generated stubs, a
health check without grpcio-health-checking, deterministic block generators and an independent
state-root model.

Every child tandemd is started with PR_SET_PDEATHSIG=SIGKILL, so it dies with the test even when
ctest kills the test on its timeout, and every Node still alive is killed at exit. Listeners bind
127.0.0.1 port 0 (the ports are read from tandemd's log); no metrics endpoint is opened.
"""
import argparse
import atexit
import ctypes
import hashlib
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

grpc = None
pb = None
pb_grpc = None

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
_LIVE_NODES = []


def common_args(description, extra=None):
    """Parses the arguments every suite takes, imports grpc and the stubs, returns the args."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tandemd", required=True, help="the tandemd binary")
    parser.add_argument("--stubs", required=True, help="folder of the generated Python stubs")
    parser.add_argument("--guests", required=True, help="folder of the built guest modules")
    parser.add_argument("--blocks", help="tests/data/bitcoin_blocks.json")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    if extra:
        extra(parser)
    args = parser.parse_args()
    load_stubs(args.stubs)
    return args


def load_stubs(stubs):
    global grpc, pb, pb_grpc
    sys.path.insert(0, stubs)
    import grpc as grpc_module
    from tandem.v1 import tandem_pb2, tandem_pb2_grpc
    grpc, pb, pb_grpc = grpc_module, tandem_pb2, tandem_pb2_grpc


class WorkDir:
    """A temporary folder removed at exit unless --keep (then its path is printed)."""

    def __init__(self, prefix, keep=False):
        self.path = tempfile.mkdtemp(prefix=prefix)
        self.keep = keep
        atexit.register(self.cleanup)

    def __call__(self, *parts):
        return os.path.join(self.path, *parts)

    def cleanup(self):
        if self.keep:
            print(f"work folder kept: {self.path}")
        else:
            shutil.rmtree(self.path, ignore_errors=True)


def _child_setup(extra=None):
    def setup():
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.setpgid(0, 0)
        if extra:
            extra()
    return setup


def rlimit_as(limit_bytes):
    """A preexec hook that caps the child's address space (RLIMIT_AS)."""
    import resource

    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    return apply


CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1),
                   ("grpc.max_receive_message_length", -1),
                   ("grpc.enable_retries", 0)]


class Node:
    """One tandemd process. start() waits until both listeners are up (or the process exits)."""

    def __init__(self, tandemd, module, db, log_path, flags=(), preexec=None, name="node"):
        self.tandemd = tandemd
        self.module = module
        self.db = db
        self.log_path = log_path
        self.flags = list(flags)
        self.preexec = preexec
        self.name = name
        self.process = None
        self.port = None
        self.admin_port = None
        self.channels = []

    def command(self):
        return [self.tandemd, f"--module={self.module}", f"--db={self.db}",
                "--listen=127.0.0.1:0", "--admin_listen=127.0.0.1:0", "--metrics_listen="
                ] + self.flags

    def start(self, timeout=60):
        self.close_channels()
        self._log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "a") as log:
            log.write(f"=== start {' '.join(self.command())}\n")
            log.flush()
            self._log_offset = log.tell()
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            preexec_fn=_child_setup(self.preexec))
        _LIVE_NODES.append(self)
        self.port = self._wait_for_port("Indexer", timeout)
        self.admin_port = self._wait_for_port("Admin", timeout)
        indexer_channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=CHANNEL_OPTIONS)
        admin_channel = grpc.insecure_channel(f"127.0.0.1:{self.admin_port}",
                                              options=CHANNEL_OPTIONS)
        self.channels = [indexer_channel, admin_channel]
        self.indexer = pb_grpc.IndexerStub(indexer_channel)
        self.admin = pb_grpc.AdminStub(admin_channel)
        self.indexer_channel = indexer_channel
        self.admin_channel = admin_channel
        return self

    def log_since_start(self):
        with open(self.log_path, errors="replace") as log:
            log.seek(self._log_offset)
            return log.read()

    def _wait_for_port(self, what, timeout):
        deadline = time.time() + timeout
        pattern = re.compile(what + r"[a-zA-Z ]* listening on [0-9.]+:(\d+)")
        while time.time() < deadline:
            match = pattern.search(self.log_since_start())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name}: tandemd exited {self.process.returncode} "
                                     f"before listening:\n{self.log_since_start()[-3000:]}")
            time.sleep(0.02)
        raise AssertionError(f"{self.name}: tandemd never logged '{what} listening on'")

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def close_channels(self):
        for channel in self.channels:
            channel.close()
        self.channels = []

    def kill(self):
        """SIGKILL, and wait for the process to be gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.close_channels()

    def stop(self, timeout=60):
        """SIGTERM (a clean shutdown); returns the exit status. Kills on timeout."""
        if self.process is None:
            return None
        # Idle client connections slow tandemd's shutdown by seconds: close them first.
        self.close_channels()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
                raise AssertionError(f"{self.name}: tandemd ignored SIGTERM for {timeout} s")
        self.close_channels()
        return self.process.returncode

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    # --- RPC shorthands -------------------------------------------------------------------------
    def tip(self):
        """The tip height, or None on an empty store."""
        response = self.indexer.GetTip(pb.GetTipRequest(), timeout=30)
        return response.tip.height if response.HasField("tip") else None

    def block(self, height):
        return self.indexer.GetBlock(pb.GetBlockRequest(height=height), timeout=30).block

    def roots(self, first, last):
        return {h: bytes(self.block(h).state_root) for h in range(first, last + 1)}

    def submit(self, height, block, timeout=60, **fields):
        return self.indexer.SubmitBlock(pb.SubmitBlockRequest(height=height, block=block,
                                                              **fields), timeout=timeout)

    def stream(self, blocks, first_height, timeout=600, on_response=None):
        """Streams blocks at first_height.., returns the responses (raises on a failed block)."""
        def requests():
            for i, block in enumerate(blocks):
                yield pb.SubmitBlockRequest(height=first_height + i, block=block)
        responses = []
        for response in self.indexer.StreamBlocks(requests(), timeout=timeout):
            responses.append(response)
            if on_response:
                on_response(response)
        return responses

    def status(self):
        return self.admin.Status(pb.StatusRequest(), timeout=30)

    def health(self, service=""):
        """grpc.health.v1.Health/Check on the public listener: 1 SERVING, 2 NOT_SERVING."""
        check = self.indexer_channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda name: (b"\x0a" + bytes([len(name)]) + name.encode())
            if name else b"",
            response_deserializer=parse_health_response)
        return check(service, timeout=10)


def parse_health_response(data):
    # HealthCheckResponse { ServingStatus status = 1; }: an absent field is 0 (UNKNOWN).
    if not data:
        return 0
    assert data[0] == 0x08, data
    return data[1]


def kill_all_nodes():
    for node in _LIVE_NODES:
        try:
            node.kill()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(kill_all_nodes)
# ctest ends a test on timeout with SIGKILL (children die by PDEATHSIG); on SIGTERM/SIGINT the
# children are killed by the atexit hook.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def expect_code(code, call, *args, **kwargs):
    """Runs call, expects an RpcError with the given code; returns the error's details."""
    try:
        call(*args, **kwargs)
    except grpc.RpcError as error:
        if error.code() != code:
            raise AssertionError(f"expected {code.name}, got {error.code().name}: "
                                 f"{error.details()}") from None
        return error.details() or ""
    raise AssertionError(f"expected {code.name}, the call succeeded")


# --- Blocks ---------------------------------------------------------------------------------------

def fixture_blocks(path):
    with open(path) as f:
        return [bytes.fromhex(block["hex"]) for block in json.load(f)]


def _compact_size(n):
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    return b"\xfe" + struct.pack("<I", n)


def _dsha(data):
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


class SyntheticChain:
    """Deterministic synthetic Bitcoin blocks (legacy serialization; no proof of work, which the
    indexer does not check). Transactions spend outputs of earlier blocks (so the indexer reads
    state across heights) and of the same block. Block i depends only on the seed and i."""

    def __init__(self, seed=1, max_txs=12, big_every=0, big_txs=2000):
        self.rng = random.Random(seed)
        self.max_txs = max_txs
        self.big_every = big_every  # every big_every-th block has big_txs transactions
        self.big_txs = big_txs
        self.unspent = []  # (txid, vout)
        self.blocks = []

    def _tx(self, inputs, outputs):
        body = struct.pack("<i", 1) + _compact_size(len(inputs))
        for txid, vout in inputs:
            body += txid + struct.pack("<I", vout) + _compact_size(4) + b"\x51\x52\x53\x54"
            body += struct.pack("<I", 0xFFFFFFFF)
        body += _compact_size(len(outputs))
        for value, script in outputs:
            body += struct.pack("<Q", value) + _compact_size(len(script)) + script
        body += struct.pack("<I", 0)
        return body

    def _script(self):
        # A small set of scripts, so script totals accumulate across blocks.
        which = self.rng.randrange(40)
        return b"\x76\xa9\x14" + hashlib.sha256(bytes([which])).digest()[:20] + b"\x88\xac"

    def next_block(self):
        rng = self.rng
        txs = []
        coinbase = self._tx([(b"\x00" * 32, 0xFFFFFFFF)],
                            [(5_000_000_000 + len(self.blocks), self._script())])
        txs.append(coinbase)
        new_unspent = [(_dsha(coinbase), 0)]
        big = self.big_every and len(self.blocks) % self.big_every == self.big_every - 1
        for _ in range(self.big_txs if big else rng.randrange(self.max_txs)):
            inputs = []
            for _ in range(rng.randrange(1, 4)):
                pool = self.unspent if self.unspent and rng.random() < 0.8 else new_unspent
                if not pool:
                    break
                inputs.append(pool.pop(rng.randrange(len(pool))))
            if not inputs:
                inputs = [(hashlib.sha256(rng.randbytes(8)).digest(), 0)]  # never indexed
            outputs = [(rng.randrange(1, 10**8), self._script())
                       for _ in range(rng.randrange(1, 4))]
            tx = self._tx(inputs, outputs)
            txs.append(tx)
            txid = _dsha(tx)
            new_unspent.extend((txid, vout) for vout in range(len(outputs)))
        self.unspent.extend(new_unspent)
        prev = _dsha(self.blocks[-1][:80]) if self.blocks else b"\x00" * 32
        header = struct.pack("<i", 0x20000000) + prev + rng.randbytes(32)
        header += struct.pack("<III", 1_600_000_000 + len(self.blocks), 0x1d00ffff,
                              rng.randrange(2**32))
        block = header + _compact_size(len(txs)) + b"".join(txs)
        self.blocks.append(block)
        return block

    def take(self, count):
        return [self.next_block() for _ in range(count)]


def mixed_chain(count, fixtures_path=None, seed=1, big_every=0, all_fixtures=False):
    """The fixture blocks (when given; the 1.4 MB one left out unless all_fixtures) followed by
    synthetic ones, count in all."""
    blocks = []
    if fixtures_path:
        blocks = [b for b in fixture_blocks(fixtures_path)
                  if all_fixtures or len(b) < 500_000][:count]
    chain = SyntheticChain(seed, big_every=big_every)
    blocks += chain.take(count - len(blocks))
    return blocks


# --- The state root, computed independently of tandem --------------------------------------------

def block_digest(writes):
    """writes: dict key -> value (b"" = delete), the block's final writes."""
    data = b""
    for key in sorted(writes):
        value = writes[key]
        data += struct.pack(">I", len(key)) + key + struct.pack(">I", len(value)) + value
    return hashlib.sha256(data).digest()


def next_root(previous_root, height, writes):
    return hashlib.sha256(previous_root + struct.pack(">I", height) +
                          block_digest(writes)).digest()


def rw_ops(*ops):
    """A reads_and_writes payload: ops as (op, key, value) tuples."""
    out = b""
    for op, key, value in ops:
        out += bytes([op]) + struct.pack("<I", len(key)) + key + struct.pack("<I", len(value)) + value
    return out


def report(name, started, ok=True):
    print(f"{name}: {'ok' if ok else 'FAILED'} in {time.time() - started:.1f} s", flush=True)
