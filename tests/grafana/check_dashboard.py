#!/usr/bin/env python3
"""Checks grafana/dashboards/tandem-overview.json without any server: a stable uid, a prometheus
datasource variable that every panel uses, a PromQL expression on every panel (valid, as promtool
parses it), the panels an operator needs, and only metrics that tandem exports (as named in the
metrics sources) or recording rules of rules.yml. Also checks that the rules use only such metrics.
Exit status 0 when everything holds; otherwise every problem is printed."""

import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # No __pycache__ in the source tree.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_lib  # noqa: E402

EXPECTED_UID = "tandem-overview"

# (what the dashboard must show, a regex the panel titles must match).
REQUIRED_PANELS = [
    ("memory per slot against the --warm_at / --swap_at lines", r"memory per slot"),
    ("swap policy and its thresholds", r"swap policy"),
    ("standby state", r"standby state"),
    ("swaps by reason", r"swaps by reason"),
    ("swap pause quantiles", r"swap pause"),
    ("warm quantiles", r"warm-up duration"),
    ("blocks per second", r"blocks per second"),
    ("block latency", r"block latency"),
    ("tip height", r"tip height"),
    ("views", r"views"),
    ("gRPC errors by code", r"grpc errors by code"),
    ("RSS", r"rss"),
    ("instance failures by kind of call", r"instance failures by call"),
    ("V8 heap per slot", r"v8 heap per slot"),
    ("database write stalls and WAL sync time", r"write stalls and wal sync"),
    ("gRPC calls in flight", r"calls in flight"),
    ("time since the last commit", r"since the last commit"),
    ("dropped watch events", r"watch events dropped"),
    ("historical instances against their cap", r"historical instances"),
    ("build and module identity", r"build and module"),
    ("snapshots taken and failed", r"snapshots taken and failed"),
    ("age of the last snapshot", r"since the last snapshot"),
    ("guest memory committed against the host memory budget, and refusals", r"host memory budget"),
]


# Metrics that tandem-follow (tools/follow) exports from its own /metrics, which the rules may use
# (TandemTipNotAdvancing fires while a follower reports lag). The dashboard may not: it is checked
# against tandemd alone.
FOLLOWER_METRICS = {"tandem_follow_lag_blocks"}


def exported_metrics(sources):
    names = set()
    for path in sources:
        with open(path, encoding="utf-8") as f:
            names.update(re.findall(r'"((?:tandem|grpc_server|process)_[a-z0-9_]+)"', f.read()))
    names.add("up")  # Prometheus's own, per target.
    return names


def check_promql(promtool, exprs, problems):
    """Parses every expression with promtool by making each one a recording rule."""
    if not promtool:
        problems.append("promtool not given: expressions not parsed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dashboard_rules.yml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, expr in enumerate(exprs):
                f.write(f"      - record: dashboard:expr:{i}\n")
                f.write("        expr: " + repr_yaml(expr) + "\n")
        result = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True,
                                timeout=60)
        if result.returncode != 0:
            problems.append("promtool cannot parse a dashboard expression:\n" + result.stdout +
                            result.stderr)


def repr_yaml(text):
    return "'" + text.replace("'", "''") + "'"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dashboard", required=True)
    parser.add_argument("--rules", required=True)
    parser.add_argument("--metrics-source", action="append", required=True)
    parser.add_argument("--promtool", default="")
    args = parser.parse_args()

    problems = []
    dashboard = dashboard_lib.load_dashboard(args.dashboard)
    recording, alerts = dashboard_lib.load_rules(args.rules)
    exported = exported_metrics(args.metrics_source)

    if dashboard.get("uid") != EXPECTED_UID:
        problems.append(f"uid is {dashboard.get('uid')!r}, expected {EXPECTED_UID!r}")
    if dashboard.get("id") is not None:
        problems.append("a provisioned dashboard must not carry a numeric id")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    datasource = variables.get("datasource")
    if not datasource or datasource.get("type") != "datasource" or datasource.get("query") != "prometheus":
        problems.append("no variable `datasource` of type datasource with query prometheus")

    ids = set()
    panels = dashboard_lib.panels(dashboard)
    for panel in panels:
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            problems.append(f"panel {title!r}: duplicate id {panel.get('id')}")
        ids.add(panel.get("id"))
        if "gridPos" not in panel:
            problems.append(f"panel {title!r}: no gridPos")
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"panel {title!r}: does not use the ${{datasource}} variable")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"panel {title!r}: no targets")
        for target in targets:
            if not target.get("expr", "").strip():
                problems.append(f"panel {title!r} target {target.get('refId')}: no PromQL expr")
            if target.get("datasource", {}).get("uid", "${datasource}") != "${datasource}":
                problems.append(f"panel {title!r} target {target.get('refId')}: another datasource")

    titles = [p.get("title", "").lower() for p in panels]
    for what, pattern in REQUIRED_PANELS:
        if not any(re.search(pattern, t) for t in titles):
            problems.append(f"no panel for {what} (title matching /{pattern}/)")
    memory = [p for p in panels if "memory per slot" in p.get("title", "").lower()]
    if memory:
        exprs = " ".join(t.get("expr", "") for t in memory[0].get("targets", []))
        # The lines follow the configuration (the gauges of --warm_at, --swap_at and the cap),
        # never fixed fractions.
        for name in ("tandem_warm_at_ratio", "tandem_swap_at_ratio",
                     "tandem_instance_memory_limit_bytes", "tandem_instance_memory_bytes"):
            if name not in exprs:
                problems.append(f"memory panel lacks {name!r}")
        fixed = re.findall(r"(?<![\w.])0\.\d+\s*\*|\*\s*0\.\d+(?![\w.])", exprs)
        if fixed:
            problems.append(f"memory panel draws fixed fractions of the cap: {fixed}")

    budget = [p for p in panels if "host memory budget" in p.get("title", "").lower()]
    if budget:
        exprs = " ".join(t.get("expr", "") for t in budget[0].get("targets", []))
        for name in ("tandem_host_memory_budget_bytes", "tandem_guest_memory_committed_bytes",
                     "tandem_host_memory_refusals_total"):
            if name not in exprs:
                problems.append(f"host memory budget panel lacks {name!r}")

    exprs = [dashboard_lib.to_promql(e) for _, _, e in dashboard_lib.expressions(dashboard)]
    for title, ref, expr in dashboard_lib.expressions(dashboard):
        if "$" in dashboard_lib.to_promql(expr):
            problems.append(f"panel {title!r} {ref}: unknown variable in {expr!r}")
        for name in dashboard_lib.metric_names(dashboard_lib.to_promql(expr)):
            if name in recording:
                continue
            if dashboard_lib.exposition_name(name) not in exported:
                problems.append(f"panel {title!r} {ref}: {name} is neither exported nor recorded")
    for rule, expr in list(recording.items()) + list(alerts.items()):
        for name in dashboard_lib.metric_names(expr):
            if name in FOLLOWER_METRICS:
                continue
            if name not in recording and dashboard_lib.exposition_name(name) not in exported:
                problems.append(f"rule {rule}: {name} is neither exported nor recorded")
    check_promql(args.promtool, exprs, problems)

    if problems:
        print("dashboard check FAILED:")
        for problem in problems:
            print("  - " + problem)
        return 1
    print(f"dashboard check OK: {len(panels)} panels, {len(exprs)} expressions, uid {EXPECTED_UID}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
