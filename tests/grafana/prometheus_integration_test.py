#!/usr/bin/env python3
"""Integration test of tandem's observability: starts tandemd and a real Prometheus server on
loopback (scraping tandemd every second and evaluating grafana/prometheus/rules.yml), submits
blocks, runs views, makes calls fail, forces a manual swap, then asks Prometheus's HTTP API for
every PromQL expression of the Grafana dashboard: each must return data. Every metric a panel uses
(directly or through a recording rule) must be in tandemd's /metrics output.

Runs with the system python3 (python3-grpcio, python3-protobuf, python3-yaml). Every wait is
bounded; both servers are killed at the end, also on failure."""

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True  # No __pycache__ in the source tree.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import dashboard_lib  # noqa: E402
import tandemd_process  # noqa: E402

TEST_DEADLINE_SECONDS = 200
# Not the defaults (0.70, 0.90): the dashboard's memory lines must follow what tandemd runs with.
WARM_AT = 0.55
SWAP_AT = 0.8
MEMORY_LIMIT_BYTES = 256 << 20
START_TIMEOUT_SECONDS = 60


class TestFailure(Exception):
    pass


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def listening_ports(pid):
    """The TCP ports process `pid` listens on (from /proc: its socket inodes, then the LISTEN rows
    of /proc/net/tcp and tcp6). How a server started on port 0 that does not report its port is
    found without ever choosing a port for it."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            for row in f.read().splitlines()[1:]:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rpartition(":")[2], 16))
    return sorted(ports)


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode("utf-8")


class Processes:
    """Started servers, stopped (SIGTERM, then SIGKILL) in reverse order."""

    def __init__(self):
        self.started = []  # (name, Popen, log path)

    def start(self, name, argv, log_path):
        log(f"starting {name}: {' '.join(argv)}")
        out = open(log_path, "wb")
        process = tandemd_process.spawn(argv, out)  # Dies with the test.
        out.close()
        self.started.append((name, process, log_path))
        return process

    def check_alive(self, process):
        if process.poll() is not None:
            for name, p, log_path in self.started:
                if p is process:
                    raise TestFailure(f"{name} exited with status {p.returncode}:\n"
                                      + tail(log_path))

    def stop_all(self):
        for name, process, _ in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process, log_path in reversed(self.started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log(f"{name} ignored SIGTERM for 15 s: killing it")
                process.kill()
                process.wait(timeout=10)


def tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])
    except OSError as error:
        return f"(no log: {error})"


def wait_until(what, predicate, timeout, interval=0.25, alive=None):
    """Calls predicate() until it returns a true value (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - retried until the deadline.
            last_error = error
        time.sleep(interval)
    raise TestFailure(f"timed out after {timeout} s waiting for {what}"
                      + (f" (last error: {last_error})" if last_error else ""))


def load_messages(stubs):
    sys.path.insert(0, stubs)
    from tandem.v1 import tandem_pb2  # noqa: E402 pylint: disable=import-outside-toplevel
    return tandem_pb2


class Client:
    """The few RPCs the test needs, through grpcio's generic stubs."""

    def __init__(self, pb, public_address, admin_address):
        import grpc  # pylint: disable=import-outside-toplevel
        self.grpc = grpc
        self.pb = pb
        self.public = grpc.insecure_channel(public_address)
        self.admin = grpc.insecure_channel(admin_address)

    def _call(self, channel, method, request, response_type, timeout=30):
        stub = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=response_type.FromString)
        return stub(request, timeout=timeout)

    def code_of(self, function, *args):
        """The gRPC status code name of a call ("OK" when it succeeds)."""
        try:
            function(*args)
            return "OK"
        except self.grpc.RpcError as error:
            return error.code().name

    def get_tip(self):
        return self._call(self.public, "/tandem.v1.Indexer/GetTip", self.pb.GetTipRequest(),
                          self.pb.GetTipResponse, timeout=5)

    def submit_block(self, height, block):
        return self._call(self.public, "/tandem.v1.Indexer/SubmitBlock",
                          self.pb.SubmitBlockRequest(height=height, block=block),
                          self.pb.SubmitBlockResponse)

    def view(self, name, request=b""):
        return self._call(self.public, "/tandem.v1.Indexer/View",
                          self.pb.ViewRequest(name=name, request=request), self.pb.ViewResponse)

    def swap(self):
        request = self.pb.SwapRequest()
        request.wait.seconds = 20
        return self._call(self.admin, "/tandem.v1.Admin/Swap", request, self.pb.SwapResponse)

    def status(self):
        return self._call(self.admin, "/tandem.v1.Admin/Status", self.pb.StatusRequest(),
                          self.pb.StatusResponse, timeout=5)

    def close(self):
        self.public.close()
        self.admin.close()


def parse_exposition(text):
    """{sample name: [(labels text, value)]} and the set of family names (# TYPE lines)."""
    samples, families = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            families.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        samples.setdefault(name, []).append(("{" + labels if labels else "", float(value)))
    return samples, families


def sample_value(samples, name, labels_contain=()):
    total = 0.0
    for labels, value in samples.get(name, []):
        if all(part in labels for part in labels_contain):
            total += value
    return total


def check_operator_metrics(samples, module_path):
    """The metrics an operator relies on, against what the workload did: the problems found."""
    problems = []
    with open(module_path, "rb") as f:
        module_sha256 = hashlib.sha256(f.read()).hexdigest()
    build = samples.get("tandem_build_info", [])
    if len(build) != 1 or build[0][1] != 1 or f'module_sha256="{module_sha256}"' not in build[0][0]:
        problems.append(f"tandem_build_info is {build}, expected one series of value 1 with "
                        f"module_sha256={module_sha256}")
    elif 'v8_version="' not in build[0][0] or 'version="' not in build[0][0]:
        problems.append(f"tandem_build_info lacks the versions: {build[0][0]}")
    states = {labels: value for labels, value in samples.get("tandem_standby_state", [])}
    if sorted(states.values()) != [0, 0, 0, 1] or not all('state="' in k for k in states):
        problems.append(f"tandem_standby_state must be 1 for exactly one of its 4 states: {states}")
    # Every SubmitBlock has finished: as many started as were handled.
    submit = ('grpc_service="tandem.v1.Indexer"', 'grpc_method="SubmitBlock"')
    started = sample_value(samples, "grpc_server_started_total", submit)
    handled = sample_value(samples, "grpc_server_handled_total", submit)
    if started == 0 or started != handled:
        problems.append(f"SubmitBlock: {started} started, {handled} handled; expected equal, > 0")
    # The malformed block failed the instance it ran on.
    if sample_value(samples, "tandem_instance_failures_total", ('call="block"',)) < 1:
        problems.append("tandem_instance_failures_total{call=block} did not count the malformed "
                        "block")
    if sample_value(samples, "tandem_historical_instances_limit") != 1:
        problems.append("tandem_historical_instances_limit is not --historical_instances (1)")
    last_commit = sample_value(samples, "tandem_last_commit_timestamp_seconds")
    if abs(time.time() - last_commit) > 120:
        problems.append(f"tandem_last_commit_timestamp_seconds is {last_commit}, not about now")
    if "tandem_db_wal_sync_seconds_count" not in samples:
        problems.append("tandem_db_wal_sync_seconds is missing")
    return problems


def prometheus_query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(http_get(url))
    if body.get("status") != "success":
        raise TestFailure(f"query {expr!r} failed: {body}")
    return body["data"]["result"]


def load_blocks(path, count):
    with open(path, encoding="utf-8") as f:
        blocks = json.load(f)
    small = [bytes.fromhex(b["hex"]) for b in blocks if len(b["hex"]) < 400_000]
    # Mainnet and testnet3 genesis blocks share a coinbase; the indexer does not mind (it only
    # counts), so any order works. Repeat the list if it is short.
    out = []
    while len(out) < count:
        out.extend(small)
    return out[:count]


def run(args, tmp, processes):
    deadline = time.monotonic() + TEST_DEADLINE_SECONDS
    for path, what in ((args.tandemd, "tandemd"), (args.module, "the guest module"),
                       (args.prometheus, "prometheus")):
        if not path or not os.path.exists(path):
            raise TestFailure(f"{what} not found at {path!r}")

    pb = load_messages(args.stubs)
    port_file = os.path.join(tmp, "tandemd.ports")
    tandemd_log = os.path.join(tmp, "tandemd.log")
    tandemd = processes.start("tandemd", tandemd_process.command(args.tandemd, port_file, [
        f"--module={args.module}", f"--db={os.path.join(tmp, 'db')}", "--fsync=false",
        "--swap_policy=block", f"--memory_limit={MEMORY_LIMIT_BYTES}",
        f"--warm_at={WARM_AT}", f"--swap_at={SWAP_AT}",
        # Snapshots at heights 5 and 10 of the workload, so the snapshot panels have data.
        f"--snapshot_dir={os.path.join(tmp, 'snapshots')}", "--snapshot_every=5"]), tandemd_log)
    tandemd_alive = lambda: processes.check_alive(tandemd)  # noqa: E731
    addresses = tandemd_process.wait_for_ports(tandemd, port_file, START_TIMEOUT_SECONDS,
                                               describe=lambda: tail(tandemd_log))
    metrics_url = f"http://{addresses['metrics_listen']}/metrics"
    client = Client(pb, addresses["listen"], addresses["admin_listen"])
    try:
        # The port file is written once every listener is up: gRPC and /metrics answer now.
        if client.get_tip() is None or "tandem_" not in http_get(metrics_url):
            raise TestFailure("tandemd wrote its port file before serving gRPC and /metrics")
        def ready():
            status = client.status()
            return status.active.present or status.standby_state == pb.STANDBY_STATE_READY
        wait_until("a ready instance", ready, START_TIMEOUT_SECONDS, alive=tandemd_alive)

        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {os.path.abspath(args.rules)}
scrape_configs:
  - job_name: tandem
    static_configs:
      - targets: ["{addresses['metrics_listen']}"]
""")
        prometheus = processes.start("prometheus", [
            args.prometheus, f"--config.file={config}",
            f"--storage.tsdb.path={os.path.join(tmp, 'prometheus-data')}",
            "--web.listen-address=127.0.0.1:0", "--log.level=warn",
        ], os.path.join(tmp, "prometheus.log"))
        prometheus_alive = lambda: (processes.check_alive(prometheus), tandemd_alive())  # noqa: E731
        prometheus_port = wait_until("Prometheus listening", lambda: listening_ports(prometheus.pid),
                                     START_TIMEOUT_SECONDS, interval=0.1, alive=prometheus_alive)
        prometheus_base = f"http://127.0.0.1:{prometheus_port[0]}"
        wait_until("Prometheus ready", lambda: "Ready" in http_get(prometheus_base + "/-/ready"),
                   START_TIMEOUT_SECONDS, alive=prometheus_alive)

        # The workload, spread over ~15 s so that Prometheus scrapes it as it happens.
        blocks = load_blocks(args.blocks, 10)
        tip = client.get_tip()
        height = tip.tip.height + 1 if tip.HasField("tip") else 1
        codes = {}
        def note(code):
            codes[code] = codes.get(code, 0) + 1
        for i, block in enumerate(blocks):
            prometheus_alive()
            response = client.submit_block(height, block)
            log(f"block {height}: generation {response.generation}")
            height += 1
            if client.view("block_summary").answer == b"":
                raise TestFailure("block_summary answered nothing at the tip")
            note(client.code_of(client.view, "no_such_export"))        # NOT_FOUND
            note(client.code_of(client.submit_block, height + 5, block))  # FAILED_PRECONDITION
            if i == 3:
                note(client.code_of(client.submit_block, height, b""))  # ABORTED: malformed
                swap = client.swap()
                log(f"manual swap: {swap.previous_generation} -> {swap.generation}")
            time.sleep(1.2)
        log(f"failing calls by code: {codes}")
        for code in ("NOT_FOUND", "FAILED_PRECONDITION", "ABORTED"):
            if codes.get(code, 0) == 0:
                raise TestFailure(f"expected some {code} calls, got {codes}")

        # tandemd's own output: the workload is counted, and every metric a panel uses exists.
        samples, families = parse_exposition(http_get(metrics_url))
        checks = [
            ("tandem_blocks_total", ('outcome="ok"',), len(blocks)),
            ("tandem_blocks_total", ('outcome="aborted"',), 1),
            ("tandem_swaps_total", ('reason="manual"',), 1),
            ("tandem_swaps_total", ('reason="block"',), len(blocks)),
            ("tandem_views_total", ('outcome="ok"',), len(blocks)),
            ("tandem_views_total", ('outcome="not_found"',), len(blocks)),
            ("tandem_block_seconds_count", (), len(blocks)),
            ("tandem_warm_seconds_count", (), len(blocks)),
            ("tandem_tip_height", (), height - 1),
            ("tandem_snapshots_total", ('outcome="ok"',), len(blocks) // 5),
            ("grpc_server_handled_total", ('grpc_code="FailedPrecondition"',), len(blocks)),
            ("grpc_server_handled_total", ('grpc_code="NotFound"',), len(blocks)),
            ("grpc_server_handled_total", ('grpc_code="OK"', 'grpc_method="SubmitBlock"'),
             len(blocks)),
            ("process_resident_memory_bytes", (), 1),
        ]
        problems = []
        for name, labels, at_least in checks:
            value = sample_value(samples, name, labels)
            if value < at_least:
                problems.append(f"{name}{list(labels)} = {value}, expected >= {at_least}")
        problems += check_operator_metrics(samples, args.module)

        recording, _ = dashboard_lib.load_rules(args.rules)
        dashboard = dashboard_lib.load_dashboard(args.dashboard)
        expressions = dashboard_lib.expressions(dashboard)
        used = set()
        for _, _, expr in expressions:
            used |= dashboard_lib.base_metric_names(
                dashboard_lib.metric_names(dashboard_lib.to_promql(expr)), recording)
        for name in sorted(used):
            if name not in samples and dashboard_lib.exposition_name(name) not in families:
                problems.append(f"{name} (used by the dashboard) is not in tandemd's /metrics")
        log(f"{len(used)} metrics used by the dashboard, all checked against /metrics")

        # Prometheus has scraped enough, and the recording rules have run.
        wait_until("5 successful scrapes of tandemd",
                   lambda: prometheus_query(prometheus_base,
                                            'sum_over_time(up{job="tandem"}[1m]) >= 5'),
                   60, interval=1, alive=prometheus_alive)
        targets = json.loads(http_get(prometheus_base + "/api/v1/targets"))
        for target in targets["data"]["activeTargets"]:
            if target["health"] != "up":
                problems.append(f"target {target['scrapeUrl']} is {target['health']}: "
                                f"{target.get('lastError')}")

        # Every dashboard expression returns data (retried while the rules catch up).
        for title, ref, expr in expressions:
            promql = dashboard_lib.to_promql(expr)
            remaining = max(5.0, min(30.0, deadline - time.monotonic()))
            try:
                result = wait_until(f"data for {promql!r}",
                                    lambda: prometheus_query(prometheus_base, promql),
                                    remaining, interval=1, alive=prometheus_alive)
                log(f"ok   {title} [{ref}]: {len(result)} series, e.g. "
                    f"{result[0]['metric']} = {result[0]['value'][1]}")
            except TestFailure as error:
                problems.append(f"panel {title!r} [{ref}] returned no data: {promql} ({error})")

        # The memory panel's warm and swap lines sit at the configured fractions of the cap.
        memory_panel = [p for p in dashboard_lib.panels(dashboard)
                        if "memory per slot" in p.get("title", "").lower()]
        lines = {t["legendFormat"]: t["expr"] for t in memory_panel[0]["targets"]
                 if "warm at" in t.get("legendFormat", "") or "swap at" in t.get("legendFormat", "")}
        for legend, fraction in (("warm at", WARM_AT), ("swap at", SWAP_AT)):
            exprs = [e for name, e in lines.items() if legend in name]
            if len(exprs) != 1:
                problems.append(f"memory panel: expected one {legend!r} line, found {lines}")
                continue
            result = prometheus_query(prometheus_base, dashboard_lib.to_promql(exprs[0]))
            want = fraction * MEMORY_LIMIT_BYTES
            got = [float(r["value"][1]) for r in result]
            if not got or any(abs(value - want) > 1 for value in got):
                problems.append(f"memory panel {legend!r} line is {got}, expected {want}")
            if any(r["metric"].get("policy") != "block" for r in result):
                problems.append(f"memory panel {legend!r} line lacks policy=block: {result}")
        log(f"memory lines at {WARM_AT} and {SWAP_AT} of the cap, as configured")

        if problems:
            raise TestFailure("\n  - ".join(["observability checks failed:"] + problems))
        log(f"all {len(expressions)} dashboard expressions returned data")
    finally:
        client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tandemd", required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--stubs", required=True, help="folder of the generated Python stubs")
    parser.add_argument("--blocks", required=True)
    parser.add_argument("--dashboard", required=True)
    parser.add_argument("--rules", required=True)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="tandem-prometheus-test-")
    processes = Processes()
    status = 1
    try:
        run(args, tmp, processes)
        status = 0
    except TestFailure as error:
        log(f"FAILED: {error}")
    except Exception:  # noqa: BLE001 - report anything, then clean up.
        log("FAILED with an exception:\n" + traceback.format_exc())
    finally:
        processes.stop_all()
        if status != 0:
            for name, _, log_path in processes.started:
                log(f"--- last lines of {name}'s log ---\n{tail(log_path)}")
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    log("PASSED" if status == 0 else "FAILED")
    return status


if __name__ == "__main__":
    sys.exit(main())
