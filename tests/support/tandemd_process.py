"""tandemd as a child process of a Python test, started one way everywhere: every listener on
127.0.0.1 port 0, the ports the kernel gave read back from tandemd's --port_file (written once all
listeners are up, see server/port_file.h), so no test picks a port that another process could take
first.

The child dies with the test (PR_SET_PDEATHSIG=SIGKILL, even when ctest kills the test on its
timeout) and gets its own process group. No Python code runs between fork and exec (no
preexec_fn): grpcio registers a pthread_atfork handler that joins gRPC's executor threads while
the forking thread holds the GIL, so a fork() while a gRPC callback waits for the GIL deadlocks
the test forever inside subprocess.Popen (this hung the two-node suite until ctest's timeout).
Without preexec_fn, subprocess uses vfork(), which runs no fork handlers; the death signal and
resource limits are set by util-linux's setpriv and prlimit, which then exec the command.

Used by the reliability harness, the Python client test and the Prometheus integration test.
"""
import os
import subprocess
import time

LISTENERS = ("listen", "admin_listen", "metrics_listen")


def command(tandemd, port_file, flags=(), metrics=True):
    """The command line: loopback listeners on port 0, --port_file, then `flags`. With
    metrics=False no /metrics endpoint is opened."""
    return [tandemd, "--listen=127.0.0.1:0", "--admin_listen=127.0.0.1:0",
            "--metrics_listen=127.0.0.1:0" if metrics else "--metrics_listen=",
            f"--port_file={port_file}"] + list(flags)


def guarded(argv, limits=None, cgroup=None):
    """argv prefixed so that the process dies with this one (SIGKILL) and, with `limits` (a dict
    of prlimit resources, e.g. {"as": bytes, "data": bytes}), runs under those hard and soft
    limits; with `cgroup` (a cgroup folder), the process moves itself into that cgroup (its
    cgroup.procs) before it execs. The process keeps its pid across the exec chain."""
    prefix = ["setpriv", "--pdeathsig", "KILL", "--"]
    if limits:
        prefix += ["prlimit"] + [f"--{name}={value}" for name, value in limits.items()] + ["--"]
    if cgroup:
        prefix += ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup]
    return prefix + list(argv)


def spawn(argv, log, limits=None, cgroup=None):
    """Starts guarded(argv, limits, cgroup) in its own process group, stdout and stderr to the
    open file `log`. Removes the --port_file in argv first, so a stale one is never read."""
    for arg in argv:
        if arg.startswith("--port_file="):
            try:
                os.remove(arg.split("=", 1)[1])
            except FileNotFoundError:
                pass
    return subprocess.Popen(guarded(argv, limits, cgroup), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, process_group=0)


def read_port_file(path):
    """{"listen": "127.0.0.1:40123", "admin_listen": ..., "metrics_listen": ...}; "" for a
    listener that is off."""
    addresses = dict.fromkeys(LISTENERS, "")
    with open(path) as f:
        for line in f.read().splitlines():
            name, _, value = line.partition("=")
            if name not in addresses:
                raise AssertionError(f"{path}: unexpected line {line!r}")
            addresses[name] = value
    return addresses


def port(address):
    """The port of "host:port" (0 for "")."""
    return int(address.rpartition(":")[2]) if address else 0


def wait_for_ports(process, port_file, timeout=60, describe=lambda: ""):
    """Waits until `process` has written `port_file` and returns read_port_file's dict. Raises
    AssertionError when the process exits first or `timeout` passes; `describe()` (e.g. the log's
    tail) is added to the message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(port_file):
            return read_port_file(port_file)
        if process.poll() is not None:
            raise AssertionError(f"tandemd exited {process.returncode} before serving:\n"
                                 f"{describe()}")
        time.sleep(0.02)
    raise AssertionError(f"tandemd wrote no port file within {timeout} s:\n{describe()}")
