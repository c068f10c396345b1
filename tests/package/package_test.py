#!/usr/bin/env python3
"""The Debian package, built and used as an operator would: `cpack -G DEB` from the build folder,
its control data (Depends covering every library the binaries load, the conffile, the maintainer
scripts), `dpkg -x` into a scratch root, `systemd-analyze verify` of the unit, then the installed
tandemd started with the installed flag file and guest: the installed tandemctl submits the
fixture blocks and reads a view, the installed tandem-compare compares the node with itself, and
SIGTERM stops tandemd within --shutdown_grace. A second start without --module finds the bundled
guest beside the installed binary.

Usage: package_test.py --build DIR --cpack PATH --systemd-analyze PATH --v8-lib-dir DIR
                       --stubs DIR --blocks JSON [--keep]
Every wait is bounded; tandemd children are killed at exit (harness.py)."""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # No __pycache__ in the source tree.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reliability"))
import harness as h  # noqa: E402

EXPECTED_FILES = [
    "usr/bin/tandemd", "usr/bin/tandemctl", "usr/bin/tandem-compare", "usr/bin/tandem-follow",
    "usr/share/tandem/guests/bitcoin_indexer.wasm",
    "usr/share/tandem/grafana/dashboards/tandem-overview.json",
    "usr/share/tandem/grafana/prometheus/rules.yml",
    "usr/share/tandem/grafana/prometheus/prometheus.yml",
    "usr/share/tandem/grafana/provisioning/dashboards/tandem.yaml",
    "usr/share/tandem/grafana/provisioning/datasources/prometheus.yaml",
    "usr/share/doc/tandem/README.md",
    "usr/share/doc/tandem/docs/design.md",
    "usr/share/doc/tandem/docs/operations.md",
    "usr/share/doc/tandem/docs/writing-a-guest.md",
    "etc/tandem/tandemd.flags",
    "lib/systemd/system/tandemd.service",
]
BINARIES = ["usr/bin/tandemd", "usr/bin/tandemctl", "usr/bin/tandem-compare",
            "usr/bin/tandem-follow"]
# Libraries whose package dpkg cannot name on a machine where they are only unpacked (setup.sh
# keeps libnode108 in third_party/ when the machine's nodejs conflicts with it).
KNOWN_PACKAGES = {"libnode.so.108": "libnode108"}
SHUTDOWN_GRACE_SECONDS = 5


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(argv, **kwargs):
    kwargs.setdefault("timeout", 120)
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


def build_package(args, out):
    run([args.cpack, "--config", os.path.join(args.build, "CPackConfig.cmake"), "-G", "DEB",
         "-B", out], cwd=args.build, timeout=300)
    debs = glob.glob(os.path.join(out, "*.deb"))
    assert len(debs) == 1, f"expected one package in {out}, found {debs}"
    return debs[0]


def check_control(deb, tmp):
    fields = {name: run(["dpkg-deb", "-f", deb, name]).strip()
              for name in ("Package", "Version", "Architecture", "Depends")}
    assert fields["Package"] == "tandem", fields
    assert fields["Architecture"] == "amd64", fields
    depends = {re.split(r"[ (]", d.strip())[0] for d in fields["Depends"].split(",")}
    assert "libnode108" in depends and "adduser" in depends, depends
    control = os.path.join(tmp, "control")
    run(["dpkg-deb", "-e", deb, control])
    with open(os.path.join(control, "conffiles")) as f:
        assert f.read().split() == ["/etc/tandem/tandemd.flags"]
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(control, script)
        assert os.access(path, os.X_OK), f"{script} is not executable"
        run(["sh", "-n", path])
    with open(os.path.join(control, "postinst")) as f:
        postinst = f.read()
    assert re.search(r"adduser --system --group .* tandem", postinst, re.S), postinst
    log(f"control: {fields['Package']} {fields['Version']}, {len(depends)} dependencies, "
        "conffile, maintainer scripts parse")
    return depends


def check_files(root):
    missing = [f for f in EXPECTED_FILES if not os.path.isfile(os.path.join(root, f))]
    assert not missing, f"not in the package: {missing}"
    for binary in BINARIES:
        assert os.access(os.path.join(root, binary), os.X_OK), f"{binary} is not executable"
    log(f"{len(EXPECTED_FILES)} expected files unpacked")


_OWNERS = {}


def owning_package(library, path):
    if (library, path) not in _OWNERS:
        _OWNERS[(library, path)] = _find_owner(library, path)
    return _OWNERS[(library, path)]


def _find_owner(library, path):
    if library in KNOWN_PACKAGES:
        return KNOWN_PACKAGES[library]
    candidates = [path]
    if path.startswith("/usr/"):
        candidates.append(path[len("/usr"):])
    else:
        candidates.append("/usr" + path)
    for candidate in candidates:
        result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True,
                                timeout=60)
        if result.returncode == 0:
            return result.stdout.split(":")[0].strip()
    raise AssertionError(f"no Debian package owns {library} ({path})")


def check_dependencies(root, depends, env):
    """Every library the installed binaries load comes from a package the .deb depends on, and no
    binary carries an rpath into the build machine."""
    uncovered = set()
    for binary in BINARIES:
        path = os.path.join(root, binary)
        dynamic = run(["readelf", "-d", path])
        assert "RPATH" not in dynamic and "RUNPATH" not in dynamic, f"{binary} has an rpath"
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic)
        resolved = {}
        for line in run(["ldd", path], env=env).splitlines():
            match = re.match(r"\s*(\S+) => (/\S+)", line)
            if match:
                resolved[match.group(1)] = match.group(2)
        for library in needed:
            assert library in resolved, f"{binary}: {library} does not resolve"
            package = owning_package(library, resolved[library])
            if package not in depends:
                uncovered.add(f"{library} ({package})")
    assert not uncovered, f"Depends lacks the packages of {sorted(uncovered)}"
    log("Depends covers every NEEDED library of the installed binaries; no rpath")


def flag_seconds(text, name):
    match = re.search(rf"^--{name}=(\d+)s$", text, re.M)
    assert match, f"--{name}=<N>s not found in the flag file"
    return int(match.group(1))


def check_unit(root, systemd_analyze, tmp):
    with open(os.path.join(root, "lib/systemd/system/tandemd.service")) as f:
        unit = f.read()
    with open(os.path.join(root, "etc/tandem/tandemd.flags")) as f:
        flags = f.read()
    for line in ("User=tandem", "Group=tandem", "Restart=on-failure", "KillSignal=SIGTERM",
                 "ExecStart=/usr/bin/tandemd --flagfile=/etc/tandem/tandemd.flags",
                 "StateDirectory=tandem"):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), f"the unit lacks {line!r}"
    stop = int(re.search(r"^TimeoutStopSec=(\d+)s$", unit, re.M).group(1))
    grace = flag_seconds(flags, "shutdown_grace")
    assert stop > grace, f"TimeoutStopSec={stop}s does not leave --shutdown_grace={grace}s room"
    db = re.search(r"^--db=(\S+)$", flags, re.M).group(1)
    assert db.startswith("/var/lib/tandem/"), f"--db={db} is outside the StateDirectory"
    module = re.search(r"^--module=(\S+)$", flags, re.M).group(1)
    assert os.path.isfile(os.path.join(root, module.lstrip("/"))), f"--module={module} not packaged"

    # systemd resolves the unit's dependencies from the machine's units; its paths point into the
    # scratch root so that the binary and the flag file are checked as packaged.
    unit_dir = os.path.join(tmp, "unit")
    os.makedirs(unit_dir)
    copy = os.path.join(unit_dir, "tandemd.service")
    with open(copy, "w") as f:
        f.write(unit.replace("/usr/bin/tandemd", os.path.join(root, "usr/bin/tandemd"))
                    .replace("/etc/tandem/", os.path.join(root, "etc/tandem/")))
    result = subprocess.run([systemd_analyze, "verify", copy], capture_output=True, text=True,
                            timeout=120)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "tandemd.service" in line]
    assert result.returncode == 0 and not complaints, (
        f"systemd-analyze verify: exit {result.returncode}\n{result.stdout}{result.stderr}")
    log(f"unit verified by systemd-analyze; TimeoutStopSec {stop}s > --shutdown_grace {grace}s")


def ctl(root, node, env, *args):
    argv = [os.path.join(root, "usr/bin/tandemctl"), f"--addr=127.0.0.1:{node.port}",
            f"--admin_addr=127.0.0.1:{node.admin_port}", "--timeout=60s", *args]
    return run(argv, env=env)


def serve_from_the_package(args, root, env, tmp):
    flagfile = os.path.join(root, "etc/tandem/tandemd.flags")
    module = os.path.join(root, "usr/share/tandem/guests/bitcoin_indexer.wasm")

    class InstalledNode(h.Node):
        """The installed tandemd with the installed flag file first, then this test's overrides
        (scratch database, free loopback ports, a short grace)."""

        def command(self):
            return [self.tandemd, f"--flagfile={flagfile}"] + super().command()[1:]

    os.environ.update(env)  # The child tandemd finds libnode like the tools below.
    node = InstalledNode(os.path.join(root, "usr/bin/tandemd"), module, os.path.join(tmp, "db"),
                         os.path.join(tmp, "tandemd.log"),
                         flags=["--fsync=false", f"--shutdown_grace={SHUTDOWN_GRACE_SECONDS}s"],
                         name="installed")
    node.start()
    blocks = h.fixture_blocks(args.blocks)
    hex_path = os.path.join(tmp, "blocks.hex")
    with open(hex_path, "w") as f:
        f.writelines(block.hex() + "\n" for block in blocks)
    ctl(root, node, env, "submit", "--start_height=1", "--progress=false", hex_path)
    tip = json.loads(ctl(root, node, env, "--json", "tip"))
    assert tip["tip"]["height"] == len(blocks), tip
    view = json.loads(ctl(root, node, env, "--json", "view", "block_summary",
                          "--request_hex=01000000"))
    answer = bytes.fromhex(view["answer"])
    assert len(answer) == 48, view
    status = json.loads(ctl(root, node, env, "--json", "status"))
    assert status["module_path"] == module, status["module_path"]
    compare = subprocess.run([os.path.join(root, "usr/bin/tandem-compare"),
                              f"--a=127.0.0.1:{node.port}", f"--b=127.0.0.1:{node.port}",
                              "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert compare.returncode == 0, compare.stdout + compare.stderr
    assert json.loads(compare.stdout)["compared"] == len(blocks), compare.stdout
    log(f"installed tandemd served {len(blocks)} fixture blocks from the installed guest; "
        "installed tandemctl and tandem-compare agree")

    started = time.monotonic()
    code = node.stop(timeout=SHUTDOWN_GRACE_SECONDS + 10)
    took = time.monotonic() - started
    assert code == 0, f"tandemd exited {code} after SIGTERM:\n{node.log_since_start()[-2000:]}"
    assert took < SHUTDOWN_GRACE_SECONDS + 5, f"SIGTERM took {took:.1f}s"
    log(f"SIGTERM: clean exit in {took:.2f}s (--shutdown_grace={SHUTDOWN_GRACE_SECONDS}s)")

    # Without --module, the installed tandemd serves the guest installed beside it.
    bare = h.Node(os.path.join(root, "usr/bin/tandemd"), module, os.path.join(tmp, "db2"),
                  os.path.join(tmp, "tandemd2.log"), name="default-module")
    bare.command = lambda: [a for a in h.Node.command(bare) if not a.startswith("--module=")]
    bare.start()
    status = json.loads(ctl(root, bare, env, "--json", "status"))
    assert status["module_path"] == module, status["module_path"]
    assert bare.stop(timeout=30) == 0
    log("without --module: the bundled guest beside the installed binary")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", required=True)
    parser.add_argument("--cpack", required=True)
    parser.add_argument("--systemd-analyze", required=True)
    parser.add_argument("--v8-lib-dir", required=True,
                        help="where libnode.so.108 is (the system's, or third_party's copy)")
    parser.add_argument("--stubs", required=True)
    parser.add_argument("--blocks", required=True)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    h.load_stubs(args.stubs)

    tmp = tempfile.mkdtemp(prefix="tandem-package-")
    try:
        deb = build_package(args, os.path.join(tmp, "out"))
        log(f"built {os.path.basename(deb)} ({os.path.getsize(deb) // 1024} KiB)")
        depends = check_control(deb, tmp)
        root = os.path.join(tmp, "root")
        run(["dpkg", "-x", deb, root])
        check_files(root)
        # What the package's dependency provides: Debian's libnode108 where it is installed,
        # else the copy setup.sh unpacked (the machine's nodejs conflicts with the package).
        env = dict(os.environ)
        if not os.path.exists("/usr/lib/x86_64-linux-gnu/libnode.so.108"):
            env["LD_LIBRARY_PATH"] = args.v8_lib_dir
        check_dependencies(root, depends, env)
        check_unit(root, args.systemd_analyze, tmp)
        serve_from_the_package(args, root, env, tmp)
    finally:
        h.kill_all_nodes()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("package_test: 1 passed, 0 failed")


if __name__ == "__main__":
    main()
