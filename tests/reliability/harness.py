"""Shared harness of the reliability suites: tandemd as a child process, the generated stubs, a
health check without grpcio-health-checking, deterministic block generators and an independent
state-root model.

Every child tandemd is started by tests/support/tandemd_process.py: PR_SET_PDEATHSIG=SIGKILL, so
it dies with the test even when ctest kills the test on its timeout, listeners on 127.0.0.1 port 0
with the ports read back from its --port_file. Every Node still alive is killed at exit. No
metrics endpoint is opened unless a Node asks for one.
"""
import argparse
import atexit
import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tandemd_process  # noqa: E402

grpc = None
pb = None
pb_grpc = None

_LIVE_NODES = []


# The seed of a randomized suite when neither --seed nor TANDEM_TEST_SEED gives one: CI runs the
# same scenario every time; scripts/soak.sh draws random seeds.
DEFAULT_SEED = 1


def common_args(description, extra=None, seeded=False):
    """Parses the arguments every suite takes, imports grpc and the stubs, arms the watchdog,
    returns the args. With seeded=True, args.seed is the run's seed (--seed, else the
    TANDEM_TEST_SEED environment variable, else DEFAULT_SEED), printed with the command that reruns
    exactly this scenario."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tandemd", required=True, help="the tandemd binary")
    parser.add_argument("--stubs", required=True, help="folder of the generated Python stubs")
    parser.add_argument("--guests", required=True, help="folder of the built guest modules")
    parser.add_argument("--blocks", help="tests/data/bitcoin_blocks.json")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds after which the suite prints where every thread (its own "
                             "and each live tandemd's) is and fails; ctest passes a little less "
                             "than its timeout, so a hang says where it hung")
    if seeded:
        parser.add_argument("--seed", type=int, default=None,
                            help="random seed (default: $TANDEM_TEST_SEED, else "
                                 f"{DEFAULT_SEED})")
    if extra:
        extra(parser)
    args = parser.parse_args()
    if seeded:
        if args.seed is None:
            args.seed = int(os.environ.get("TANDEM_TEST_SEED", DEFAULT_SEED))
        print(f"seed {args.seed}; rerun this scenario with: {rerun_command(args.seed)}",
              flush=True)
    if args.deadline:
        arm_watchdog(args.deadline)
    load_stubs(args.stubs)
    return args


def rerun_command(seed):
    """This process's command line with --seed set to `seed`."""
    argv = [sys.executable, os.path.abspath(sys.argv[0])]
    skip = False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg == "--seed":
            skip = True
            continue
        if not arg.startswith("--seed="):
            argv.append(arg)
    return " ".join(shlex.quote(a) for a in argv + ["--seed", str(seed)])


def arm_watchdog(seconds):
    """After `seconds`: prints every Python thread's stack and, when gdb is installed, every live
    tandemd's native stacks, then exits 1 (children die with it). A second, C-level timer 30 s
    later dumps the Python stacks and exits even if no Python thread can run any more."""
    import faulthandler
    import threading

    def expire():
        print(f"\nwatchdog: the suite is still running after {seconds:.0f} s; where every "
              "thread is:", flush=True)
        faulthandler.dump_traceback(all_threads=True)
        gdb = shutil.which("gdb")
        for node in list(_LIVE_NODES):
            if not node.alive():
                continue
            print(f"\nwatchdog: {node.name} (pid {node.pid}), log tail:\n"
                  f"{node.log_since_start()[-3000:]}", flush=True)
            if gdb:
                try:
                    trace = subprocess.run(
                        [gdb, "-p", str(node.pid), "-batch", "-nx", "-ex", "set pagination off",
                         "-ex", "thread apply all bt 12"],
                        capture_output=True, text=True, timeout=60)
                    print(trace.stdout[-20000:], flush=True)
                except Exception as error:  # noqa: BLE001 - diagnostics only
                    print(f"watchdog: gdb failed: {error}", flush=True)
        atexit._run_exitfuncs()  # Kills the nodes, removes the work folder (unless --keep).
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    faulthandler.dump_traceback_later(seconds + 30, exit=True)


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


CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1),
                   ("grpc.max_receive_message_length", -1),
                   ("grpc.enable_retries", 0)]


class Node:
    """One tandemd process. start() waits until every listener is up (or the process exits).
    `limits`: resource limits of the process (tandemd_process.guarded); `cgroup`: a cgroup
    folder the process runs in (MemoryCgroup.path)."""

    def __init__(self, tandemd, module, db, log_path, flags=(), limits=None, name="node",
                 metrics=False, cgroup=None):
        self.tandemd = tandemd
        self.module = module
        self.db = db
        self.log_path = log_path
        self.port_file = log_path + ".ports"
        self.flags = list(flags)
        self.limits = limits  # prlimit resources, e.g. {"data": 1 << 30}
        self.cgroup = cgroup
        self.name = name
        self.metrics = metrics
        self.process = None
        self.port = None
        self.admin_port = None
        self.metrics_port = None
        self.channels = []

    def command(self):
        return tandemd_process.command(self.tandemd, self.port_file,
                                       [f"--module={self.module}", f"--db={self.db}"] + self.flags,
                                       metrics=self.metrics)

    def start(self, timeout=60):
        self.close_channels()
        with open(self.log_path, "a") as log:
            log.write(f"=== start {' '.join(self.command())}\n")
            log.flush()
            self._log_offset = log.tell()
            self.process = tandemd_process.spawn(self.command(), log, self.limits, self.cgroup)
        _LIVE_NODES.append(self)
        addresses = tandemd_process.wait_for_ports(
            self.process, self.port_file, timeout,
            describe=lambda: f"{self.name}: {self.log_since_start()[-3000:]}")
        self.port = tandemd_process.port(addresses["listen"])
        self.admin_port = tandemd_process.port(addresses["admin_listen"])
        self.metrics_port = tandemd_process.port(addresses["metrics_listen"])
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
        # The test is done with this process: its channels go first.
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

    def stream(self, blocks, first_height, timeout=600, on_response=None, on_request=None):
        """Streams blocks at first_height.., returns the responses (raises on a failed block).
        on_request(height) runs as grpcio takes each request from the iterator, before it is
        written; on_response(response) as each answer arrives."""
        def requests():
            for i, block in enumerate(blocks):
                if on_request:
                    on_request(first_height + i)
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


# --- Memory cgroups (v1) ----------------------------------------------------------------------------

class CgroupUnavailable(Exception):
    """No writable cgroup v1 memory controller here; the message says why."""


def own_memory_cgroup():
    """The folder of this process's cgroup v1 memory cgroup (from /proc/self/cgroup and
    /proc/self/mountinfo). Raises CgroupUnavailable when there is none."""
    path = None
    with open("/proc/self/cgroup") as f:
        for line in f.read().splitlines():
            _, controllers, cgroup = line.split(":", 2)
            if "memory" in controllers.split(","):
                path = cgroup
    if path is None:
        raise CgroupUnavailable("no cgroup v1 memory controller in /proc/self/cgroup")
    with open("/proc/self/mountinfo") as f:
        for line in f.read().splitlines():
            mount, _, filesystem = line.partition(" - ")
            fields, fs_fields = mount.split(), filesystem.split()
            if len(fs_fields) >= 3 and fs_fields[0] == "cgroup" and \
                    "memory" in fs_fields[2].split(","):
                root, mount_point = fields[3], fields[4]
                relative = path[len(root):] if root != "/" and path.startswith(root) else path
                return os.path.join(mount_point, relative.lstrip("/"))
    raise CgroupUnavailable("the cgroup v1 memory controller is not mounted")


class MemoryCgroup:
    """A child of this process's memory cgroup with a memory limit, for tandemd processes to run
    in (Node(cgroup=...)). Removed at exit, once its processes are gone. Raises CgroupUnavailable
    when the controller is not writable here."""

    def __init__(self, name, limit_bytes):
        parent = own_memory_cgroup()
        self.path = os.path.join(parent, f"{name}-{os.getpid()}")
        try:
            os.mkdir(self.path)
        except OSError as error:
            raise CgroupUnavailable(f"cannot create a memory cgroup under {parent}: {error}")
        atexit.register(self.remove)
        self.set_limit(limit_bytes)

    def set_limit(self, limit_bytes):
        self.write("memory.limit_in_bytes", str(limit_bytes))

    def write(self, name, text):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(text)

    def read(self, name):
        with open(os.path.join(self.path, name)) as f:
            return f.read()

    def value(self, name):
        return int(self.read(name).split()[0])

    def oom_kills(self):
        """The kernel's OOM kills in this cgroup (memory.oom_control's oom_kill; 0 when the
        kernel does not count them)."""
        for line in self.read("memory.oom_control").splitlines():
            key, _, count = line.partition(" ")
            if key == "oom_kill":
                return int(count)
        return 0

    def procs(self):
        return [int(pid) for pid in self.read("cgroup.procs").split()]

    def remove(self):
        if not os.path.isdir(self.path):
            return
        # At exit this may run before the nodes are killed (atexit runs last-registered first).
        for pid in self.procs():
            for node in _LIVE_NODES:
                if node.alive() and node.pid == pid:
                    node.kill()
        for _ in range(100):  # The kernel may take a moment after the last process exits.
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.1)
        print(f"could not remove the cgroup {self.path}", flush=True)
