#!/usr/bin/python3
"""tandem-follow against a real node: Debian's litecoind in regtest (no peers, RPC on 127.0.0.1,
a wallet), real tandemd processes, real tandemctl. Each scenario is its own ctest entry
(`ctest -L follow`, or `-R follow_reorg`); run one by hand with

  follow_test.py --scenario NAME --tandemd ... --tandemctl ... --follow ... --stubs ... --guests ...

Scenarios:
  sync        300 blocks with wallet transactions paying legacy, P2SH-segwit and bech32 addresses
              (checked in the blocks with python3-bitcoinlib); tandem-follow catches up; every
              state root equals a second tandemd fed `getblock <hash> 0` with `tandemctl submit`,
              every stored hash equals the node's; its metrics say node height, tip and lag.
  reorg       invalidateblock 6 deep, a longer branch with other transactions: tandem-follow rolls
              back 6 and follows; script_totals of an address paid only on the abandoned branch is
              empty, of one paid only on the new branch is not; every root equals a fresh tandemd
              fed only the final chain; tandem_follow_reorgs_total 1, depth 6.
  kills       a 1,000-block sync; 5 SIGKILLs of tandem-follow and 5 of tandemd at random heights
              (seeded), each restarted: final roots and hashes equal the reference.
  node_stop   the node stopped for 10 s mid-sync (cookie credentials, which the restarted node
              renews): tandem-follow logs that it waits, then resumes; roots equal the reference.
  deep_reorg  a reorg deeper than --max_reorg_depth: exit status 4, a clear message, nothing
              rolled back.
  zmq         --zmq with a 60 s poll interval: a `hashblock` notification wakes the follower at
              once. Debian's litecoind is built without ZMQ, so the test publishes the node's
              notification itself (Bitcoin Core's format: topic, 32-byte hash, sequence) on a real
              libzmq socket, for a block the real node mined.

Randomness (amounts, kill heights) comes from --seed (default fixed; printed).
"""
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "reliability"))
import harness as h  # noqa: E402
from litecoin_node import LitecoinNode, free_port  # noqa: E402

ARGS = None
WORK = None
SEED_DEFAULT = 15


# --- Processes ------------------------------------------------------------------------------------

class FixedPortNode(h.Node):
    """tandemd that keeps its public port across restarts, so tandem-follow finds it again: the
    first start takes the port the kernel gives (port 0, read back from the port file), every
    restart asks for that same port."""

    def __init__(self, *args, port=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fixed_port = port

    def command(self):
        fixed = [f"--listen=127.0.0.1:{self.fixed_port}"] if self.fixed_port else []
        return super().command() + fixed  # The last --listen wins.

    def start(self, timeout=60):
        super().start(timeout)
        self.fixed_port = self.port
        return self


def tandemd(name, port=None):
    module = os.path.join(ARGS.guests, "bitcoin_indexer.wasm")
    return FixedPortNode(ARGS.tandemd, module, WORK(f"{name}-db"), WORK(f"{name}.log"),
                         ["--fsync=true"], name=name, port=port).start()


class Follower:
    """A tandem-follow process; its stderr goes to a log file."""

    def __init__(self, node, tandem, *flags, name="follow"):
        self.log_path = WORK(f"{name}.log")
        self.metrics_port = free_port()
        self.command = [ARGS.follow, f"--rpc_url={node.url}", *node.credentials_args(),
                        f"--addr=127.0.0.1:{tandem.fixed_port}", "--start_height=1",
                        "--max_retry_delay=1s", "--progress_interval=1s", "--poll_interval=200ms",
                        f"--metrics_listen=127.0.0.1:{self.metrics_port}", *flags]
        self.process = None

    def start(self):
        with open(self.log_path, "a") as log:
            log.write(f"=== start {' '.join(self.command)}\n")
            log.flush()
            # Dies with the test; no preexec_fn (see tests/support/tandemd_process.py).
            self.process = subprocess.Popen(h.tandemd_process.guarded(self.command), stdout=log,
                                            stderr=subprocess.STDOUT, process_group=0)
        return self

    def log(self):
        with open(self.log_path, errors="replace") as log:
            return log.read()

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self):
        """SIGTERM; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        return self.process.returncode

    def wait_exit(self, timeout):
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"tandem-follow still runs after {timeout} s:\n"
                                 f"{self.log()[-3000:]}") from None

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as response:
            text = response.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def check_alive(self):
        if self.process.poll() is not None:
            raise AssertionError(f"tandem-follow exited {self.process.returncode}:\n"
                                 f"{self.log()[-3000:]}")


def tip_or_none(tandem):
    try:
        return tandem.tip()
    except h.grpc.RpcError:
        return None  # tandemd is restarting.


def wait_for_tip(tandem, height, follower, timeout=180, node=None):
    """Waits until tandemd's tip is `height` with the node's hash there."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        follower.check_alive()
        if tip_or_none(tandem) == height and (
                node is None or stored_hash_hex(tandem, height) == node.block_hash(height)):
            return
        time.sleep(0.05)
    raise AssertionError(f"tandemd's tip is {tip_or_none(tandem)}, not {height}, after "
                         f"{timeout} s; follower log:\n{follower.log()[-3000:]}")


def stored_hash_hex(tandem, height):
    """tandemd's stored hash at `height`, as the node's RPC shows hashes (display order)."""
    return bytes(reversed(tandem.block(height).hash)).hex()


# --- Chains ---------------------------------------------------------------------------------------

ADDRESS_TYPES = ("legacy", "p2sh-segwit", "bech32")


class Wallet:
    def __init__(self, node, rng):
        self.node = node
        self.rng = rng
        node.rpc("createwallet", "test")
        self.addresses = {kind: [node.rpc("getnewaddress", "", kind) for _ in range(3)]
                          for kind in ADDRESS_TYPES}
        self.miner = node.rpc("getnewaddress", "", "bech32")

    def mature(self):
        """101 blocks: the first coinbase can be spent."""
        self.node.mine(101, self.miner)

    def pay_all_types(self):
        """One wallet transaction paying an address of each type (sendmany: one signing)."""
        payments = {self.rng.choice(self.addresses[kind]): round(self.rng.uniform(0.01, 2.0), 8)
                    for kind in ADDRESS_TYPES}
        self.node.rpc("sendmany", "", payments)

    def grow_to(self, height, txs_every=1):
        """Mines up to `height`; every `txs_every` blocks carry payments to all three types."""
        while self.node.height() < height:
            if (self.node.height() + 1) % txs_every == 0:
                self.pay_all_types()
            kind = self.rng.choice(ADDRESS_TYPES)
            self.node.mine(1, self.rng.choice(self.addresses[kind]))
            if txs_every > 1:
                left = height - self.node.height()
                step = min(left, txs_every - 1)
                if step > 0:
                    self.node.mine(step, self.miner)


def reference_node(node, name, last):
    """A second tandemd fed heights 1..last from `getblock <hash> 0` with `tandemctl submit`."""
    path = WORK(f"{name}.hex")
    node.write_hex_blocks(path, 1, last)
    reference = tandemd(name)
    result = subprocess.run([ARGS.tandemctl, f"--addr=127.0.0.1:{reference.fixed_port}",
                             "--start_height=1", "--progress=false", "submit", path],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert reference.tip() == last, (reference.tip(), last)
    return reference


def assert_same_chain(follower_tandem, reference, node, last):
    """Every root equals the reference's; every stored hash is the node's."""
    for height in range(1, last + 1):
        ours = follower_tandem.block(height)
        theirs = reference.block(height)
        assert ours.state_root == theirs.state_root, f"state root differs at height {height}"
        assert ours.write_count == theirs.write_count, height
        expected = node.block_hash(height)
        got = bytes(reversed(ours.hash)).hex()
        assert got == expected, f"hash at {height}: {got} != node's {expected}"
    assert follower_tandem.tip() == last


def script_totals(tandem, script, height=None):
    request = h.pb.ViewRequest(name="script_totals", request=script)
    if height is not None:
        request.height = height
    answer = tandem.indexer.View(request, timeout=30).answer
    if not answer:
        return None
    return struct.unpack("<QQQ", answer)


def output_kinds(node, first, last):
    """Which output script types and how many witness transactions the blocks hold, parsed with
    python3-bitcoinlib."""
    from bitcoin.core import CBlock
    kinds = set()
    witness_txs = 0
    for height in range(first, last + 1):
        block = CBlock.deserialize(bytes.fromhex(node.raw_block(height)))
        for tx in block.vtx:
            if not tx.wit.is_null():
                witness_txs += 1
            for out in tx.vout:
                script = bytes(out.scriptPubKey)
                if len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[-2:] == b"\x88\xac":
                    kinds.add("p2pkh")
                elif len(script) == 23 and script[:2] == b"\xa9\x14" and script[-1:] == b"\x87":
                    kinds.add("p2sh")
                elif len(script) == 22 and script[:2] == b"\x00\x14":
                    kinds.add("p2wpkh")
    return kinds, witness_txs


def start_chain_node(name="node", **kwargs):
    node = LitecoinNode(WORK(name), WORK(f"{name}.log"), **kwargs).start()
    return node


# --- Scenarios ------------------------------------------------------------------------------------

def scenario_sync(rng):
    node = start_chain_node(user="tandem", password="regtest-secret")
    wallet = Wallet(node, rng)
    wallet.mature()
    wallet.grow_to(300)
    kinds, witness_txs = output_kinds(node, 102, 300)
    assert kinds == {"p2pkh", "p2sh", "p2wpkh"}, kinds
    assert witness_txs > 0
    print(f"chain: 300 blocks; outputs {sorted(kinds)}, {witness_txs} witness transactions",
          flush=True)

    tandem = tandemd("follower-tandemd")
    follower = Follower(node, tandem).start()
    wait_for_tip(tandem, 300, follower, node=node)
    reference = reference_node(node, "reference", 300)
    assert_same_chain(tandem, reference, node, 300)

    # It follows new blocks as they come (polling), with wallet transactions in them.
    wallet.grow_to(305)
    wait_for_tip(tandem, 305, follower, node=node)
    metrics = follower.metrics()
    assert metrics["tandem_follow_node_height"] == 305, metrics
    assert metrics["tandem_follow_tip_height"] == 305, metrics
    assert metrics["tandem_follow_lag_blocks"] == 0, metrics
    assert metrics["tandem_follow_blocks_total"] == 305, metrics
    assert metrics["tandem_follow_reorgs_total"] == 0, metrics
    log = follower.log()
    assert "caught up with the node at height 300" in log, log
    assert re.search(r"indexed heights 1\.\.\d+ ", log), log
    assert follower.stop() == 0
    print("sync: 305 blocks, every root equals tandemctl submit's, hashes equal the node's")


def scenario_reorg(rng):
    node = start_chain_node()
    wallet = Wallet(node, rng)
    wallet.mature()
    wallet.grow_to(140)
    tandem = tandemd("follower-tandemd")
    follower = Follower(node, tandem).start()
    wait_for_tip(tandem, 140, follower, node=node)

    # The branch to abandon: 6 blocks, the first one's coinbase pays `abandoned` (a coinbase never
    # returns to the mempool, so nothing pays that address on the new branch).
    abandoned = node.rpc("getnewaddress", "", "legacy")
    abandoned_script = node.script_of(abandoned)
    node.mine(1, abandoned)
    wallet.pay_all_types()
    node.mine(5, wallet.miner)
    wait_for_tip(tandem, 146, follower, node=node)
    paid = script_totals(tandem, abandoned_script)
    assert paid is not None and paid[0] > 0 and paid[1] == 1, paid
    old_hashes = {height: stored_hash_hex(tandem, height) for height in range(141, 147)}

    node.rpc("invalidateblock", node.block_hash(141))
    assert node.height() == 140
    # The new branch, longer, with other transactions: payments to `fresh`, seen only here.
    fresh = node.rpc("getnewaddress", "", "bech32")
    fresh_script = node.script_of(fresh)
    node.rpc("sendtoaddress", fresh, 3.25)
    node.mine(1, wallet.miner)
    wallet.pay_all_types()
    node.mine(7, wallet.rng.choice(wallet.addresses["p2sh-segwit"]))
    assert node.height() == 148
    wait_for_tip(tandem, 148, follower, node=node)
    for height in range(141, 147):
        assert stored_hash_hex(tandem, height) != old_hashes[height], height

    log = follower.log()
    assert re.search(r"reorg: the node's chain leaves tandemd's above height 140 .*rolling back "
                     r"6 blocks from tandemd's tip 146", log), log
    metrics = follower.metrics()
    assert metrics["tandem_follow_reorgs_total"] == 1, metrics
    assert metrics["tandem_follow_reorg_depth_blocks_sum"] == 6, metrics
    assert metrics["tandem_follow_lag_blocks"] == 0, metrics

    fresh_node = reference_node(node, "fresh", 148)
    assert_same_chain(tandem, fresh_node, node, 148)
    assert script_totals(tandem, abandoned_script) is None
    assert script_totals(tandem, abandoned_script, height=141) is None
    totals = script_totals(tandem, fresh_script)
    assert totals is not None and totals[0] == 325_000_000, totals
    assert totals == script_totals(fresh_node, fresh_script)
    assert follower.stop() == 0
    print("reorg: rolled back 6, followed the new branch; views and roots equal a fresh node's")


def sync_from_a_reference(rng, last, txs_every):
    """A node with `last` blocks, a reference tandemd fed them by tandemctl, and a follower
    starting to index them into another tandemd."""
    node = start_chain_node()
    wallet = Wallet(node, rng)
    wallet.mature()
    wallet.grow_to(last, txs_every=txs_every)
    reference = reference_node(node, "reference", last)
    tandem = tandemd("follower-tandemd")
    follower = Follower(node, tandem).start()
    return node, reference, tandem, follower


def wait_until_past(tandem, follower, height):
    """Waits until tandemd's tip reaches `height`, polling every 2 ms (kills land mid-sync)."""
    deadline = time.time() + 120
    while (tip_or_none(tandem) or 0) < height:
        follower.check_alive()
        assert time.time() < deadline, f"tip {tip_or_none(tandem)} never reached {height}"
        time.sleep(0.002)


def scenario_kills(rng):
    node, reference, tandem, follower = sync_from_a_reference(rng, 1000, txs_every=20)
    victims = ["follow"] * 5 + ["tandemd"] * 5
    rng.shuffle(victims)
    heights = sorted(rng.sample(range(40, 960), len(victims)))
    print(f"kills: {list(zip(heights, victims))}", flush=True)
    for height, victim in zip(heights, victims):
        wait_until_past(tandem, follower, height)
        if victim == "follow":
            follower.kill()
            follower.start()
        else:
            tandem.kill()
            tandem.start()
        print(f"  SIGKILL {victim} at tip {tip_or_none(tandem)} (threshold {height})",
              flush=True)
    wait_for_tip(tandem, 1000, follower, node=node)
    assert_same_chain(tandem, reference, node, 1000)
    log = follower.log()
    assert "waiting for tandemd at" in log, log
    assert follower.stop() == 0
    print("kills: 10 SIGKILLs, roots and hashes equal the reference at all 1,000 heights")


def scenario_node_stop(rng):
    node, reference, tandem, follower = sync_from_a_reference(rng, 800, txs_every=25)
    wait_until_past(tandem, follower, 100)
    cookie_before = open(node.cookie_path).read()
    node.stop()
    stopped_at = tandem.tip()
    assert stopped_at < 800, f"the sync was over ({stopped_at}) before the node stopped"
    print(f"node_stop: node stopped with tandemd at {stopped_at}", flush=True)
    time.sleep(10)
    follower.check_alive()
    node.start()
    assert open(node.cookie_path).read() != cookie_before  # A new cookie: re-read it.
    wait_for_tip(tandem, 800, follower, node=node)
    assert_same_chain(tandem, reference, node, 800)
    log = follower.log()
    waits = re.findall(r"waiting for the node at \S+: .*; retry (\d+) in", log)
    assert len(waits) >= 5, log
    assert "the node answers again after" in log, log
    metrics = follower.metrics()
    assert metrics['tandem_follow_waiting{server="node"}'] == 0, metrics
    assert sum(v for k, v in metrics.items()
               if k.startswith('tandem_follow_rpc_errors_total{') and 'server="node"' in k) >= 5
    assert follower.stop() == 0
    print(f"node_stop: waited ({len(waits)} retries logged), resumed, roots equal the reference")


def scenario_deep_reorg(rng):
    node = start_chain_node()
    wallet = Wallet(node, rng)
    wallet.mature()
    wallet.grow_to(130, txs_every=10)
    tandem = tandemd("follower-tandemd")
    follower = Follower(node, tandem, "--max_reorg_depth=3").start()
    wait_for_tip(tandem, 130, follower, node=node)
    before = {height: tandem.block(height) for height in range(1, 131)}

    node.rpc("invalidateblock", node.block_hash(126))  # 5 deep.
    node.mine(7, wallet.rng.choice(wallet.addresses["legacy"]))
    status = follower.wait_exit(60)
    log = follower.log()
    assert status == 4, (status, log)
    assert re.search(r"reorg deeper than --max_reorg_depth=3: the node's chain \(height 132\) "
                     r"differs from tandemd's at every height from 130 down to 127 .*nothing was "
                     r"rolled back", log), log
    assert tandem.tip() == 130
    for height, record in before.items():
        assert tandem.block(height) == record, height
    print("deep_reorg: exit status 4, clear message, nothing rolled back")


def scenario_zmq(rng):
    import zmq
    node = start_chain_node()
    wallet = Wallet(node, rng)
    wallet.mature()
    wallet.grow_to(110)
    context = zmq.Context()
    publisher = context.socket(zmq.PUB)
    zmq_port = free_port()
    publisher.bind(f"tcp://127.0.0.1:{zmq_port}")
    tandem = tandemd("follower-tandemd")
    follower = Follower(node, tandem, f"--zmq=tcp://127.0.0.1:{zmq_port}",
                        "--poll_interval=60s").start()
    wait_for_tip(tandem, 110, follower, node=node)
    time.sleep(1)  # The first poll after catching up is behind us: only a notification wakes it.
    sequence = 0
    for height in (111, 112):
        block_hash = node.mine(1, wallet.miner)[0]
        started = time.time()
        publisher.send_multipart([b"hashblock", bytes.fromhex(block_hash),
                                  struct.pack("<I", sequence)])
        sequence += 1
        wait_for_tip(tandem, height, follower, timeout=20, node=node)
        print(f"zmq: height {height} indexed {time.time() - started:.2f} s after its "
              f"notification (poll interval 60 s)", flush=True)
    assert follower.stop() == 0
    publisher.close(linger=0)
    context.term()


SCENARIOS = {
    "sync": scenario_sync,
    "reorg": scenario_reorg,
    "kills": scenario_kills,
    "node_stop": scenario_node_stop,
    "deep_reorg": scenario_deep_reorg,
    "zmq": scenario_zmq,
}


def main():
    global ARGS, WORK
    ARGS = h.common_args(__doc__, lambda p: (
        p.add_argument("--scenario", required=True, choices=sorted(SCENARIOS)),
        p.add_argument("--tandemctl", required=True),
        p.add_argument("--follow", required=True),
        p.add_argument("--seed", type=int, default=SEED_DEFAULT)))
    print(f"seed {ARGS.seed} (rerun: {sys.executable} {' '.join(sys.argv)})", flush=True)
    WORK = h.WorkDir(f"tandem-follow-{ARGS.scenario}-", ARGS.keep)
    started = time.time()
    try:
        SCENARIOS[ARGS.scenario](random.Random(ARGS.seed))
    except BaseException:
        print(f"FAILED with seed {ARGS.seed}; work folder {WORK.path} (kept)", flush=True)
        WORK.keep = True
        raise
    h.report(f"follow {ARGS.scenario}", started)


if __name__ == "__main__":
    main()
