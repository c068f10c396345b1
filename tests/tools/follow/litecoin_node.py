"""A real chain node for tandem-follow's tests and benchmark: Debian's litecoind (Litecoin Core
0.21, a Bitcoin Core fork with the same JSON-RPC) in regtest, with no peers (listen=0), RPC on
127.0.0.1 only, and a wallet. Its regtest blocks use Bitcoin's serialization: MWEB's deployment is
never started (see the configuration below).

The node runs as a child process with PR_SET_PDEATHSIG=SIGKILL, so it dies with the test even when
ctest kills the test; every node still alive is stopped at exit. /usr/lib/litecoin/litecoind is run
directly: Debian's /usr/bin/litecoind wrapper would write ~/.litecoin.
"""
import atexit
import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import time

_LIVE = []


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_litecoind():
    for path in ("/usr/lib/litecoin/litecoind", shutil.which("litecoind") or ""):
        if path and os.access(path, os.X_OK):
            return path
    raise AssertionError("litecoind is not installed (scripts/setup.sh installs Debian's)")


class RpcError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


class LitecoinNode:
    """One litecoind -regtest. With a user and password, RPC uses them; otherwise the cookie."""

    def __init__(self, datadir, log_path, user=None, password=None, rpc_port=None, extra=()):
        self.datadir = datadir
        self.log_path = log_path
        self.user = user
        self.password = password
        self.rpc_port = rpc_port or free_port()
        self.extra = list(extra)
        self.process = None
        os.makedirs(datadir, exist_ok=True)
        lines = ["regtest=1", "server=1", "txindex=0", "[regtest]", "listen=0", "dnsseed=0",
                 "upnp=0", "listenonion=0", "discover=0", "rpcbind=127.0.0.1",
                 "rpcallowip=127.0.0.1", f"rpcport={self.rpc_port}", f"port={free_port()}",
                 "fallbackfee=0.0001", "rpcworkqueue=64", "printtoconsole=1",
                 # MWEB's regtest deployment activates at height 431 by default, and from then on
                 # the node can no longer mine a block with wallet transactions (its HogEx
                 # transaction has no inputs: bad-txns-vin-empty). Never starting it keeps blocks
                 # in Bitcoin's serialization at every height.
                 "vbparams=mweb:4102444800:4102444800"]
        if user:
            lines += [f"rpcuser={user}", f"rpcpassword={password}"]
        with open(os.path.join(datadir, "litecoin.conf"), "w") as conf:
            conf.write("\n".join(lines) + "\n")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.rpc_port}/"

    @property
    def cookie_path(self):
        return os.path.join(self.datadir, "regtest", ".cookie")

    def credentials_args(self):
        """tandem-follow's flags for this node's credentials."""
        if self.user:
            return [f"--rpc_user={self.user}", f"--rpc_password={self.password}"]
        return [f"--rpc_cookie={self.cookie_path}"]

    def start(self, timeout=60):
        log = open(self.log_path, "a")
        log.write(f"=== start litecoind -datadir={self.datadir}\n")
        log.flush()
        # setpriv sets PR_SET_PDEATHSIG and execs litecoind: no Python runs between fork and exec,
        # which would deadlock in grpcio's fork handler (see tests/support/tandemd_process.py).
        self.process = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--", find_litecoind(),
             f"-datadir={self.datadir}"] + self.extra,
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _LIVE.append(self)
        deadline = time.time() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"litecoind exited {self.process.returncode}; see "
                                     f"{self.log_path}")
            try:
                self.rpc("getblockcount")
                return self
            except (OSError, RpcError, http.client.HTTPException):
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, timeout=60):
        """`stop` over RPC, then waits for the process to end."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.rpc("stop")
        except (OSError, RpcError, http.client.HTTPException):
            pass
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            raise AssertionError("litecoind ignored `stop`")

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def _auth(self):
        if self.user:
            secret = f"{self.user}:{self.password}"
        else:
            with open(self.cookie_path) as cookie:
                secret = cookie.read().strip()
        return "Basic " + base64.b64encode(secret.encode()).decode()

    def rpc(self, method, *params, timeout=120):
        body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)})
        connection = http.client.HTTPConnection("127.0.0.1", self.rpc_port, timeout=timeout)
        try:
            connection.request("POST", "/", body, {"Authorization": self._auth(),
                                                    "Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status == 401:
            raise RpcError(401, "unauthorized")
        reply = json.loads(data)
        if reply.get("error"):
            raise RpcError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]

    # --- Chain helpers ---------------------------------------------------------------------------
    def height(self):
        return self.rpc("getblockcount")

    def block_hash(self, height):
        return self.rpc("getblockhash", height)

    def raw_block(self, height):
        return self.rpc("getblock", self.block_hash(height), 0)

    def mine(self, count, address):
        """Mines `count` blocks in batches (generatetoaddress), returns their hashes."""
        hashes = []
        while count > 0:
            step = min(count, 500)
            hashes += self.rpc("generatetoaddress", step, address)
            count -= step
        return hashes

    def script_of(self, address):
        return bytes.fromhex(self.rpc("getaddressinfo", address)["scriptPubKey"])

    def write_hex_blocks(self, path, first, last):
        """One hex block per line, heights first..last (what `tandemctl submit` reads)."""
        with open(path, "w") as out:
            for height in range(first, last + 1):
                out.write(self.raw_block(height) + "\n")


def _stop_all():
    for node in _LIVE:
        try:
            node.kill()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all)
