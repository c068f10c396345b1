"""Helpers shared by check_dashboard.py and prometheus_integration_test.py: read the Grafana
dashboard's PromQL expressions, make them plain PromQL, and find the metric names they use."""

import json
import re

import yaml

# Grafana's variables, replaced by what Prometheus's HTTP API accepts. $instance is a multi-value
# variable with allValue ".*".
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "15s",
    "${__interval}": "15s",
    "$instance": ".*",
    "${instance}": ".*",
}

PROMQL_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
    "group_right", "inf", "nan", "atan2",
}


def load_dashboard(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def panels(dashboard):
    """Every panel that is not a row, including panels nested in collapsed rows."""
    out = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def expressions(dashboard):
    """(panel title, refId, raw expr) for every target of every panel."""
    out = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            out.append((panel.get("title", "?"), target.get("refId", "?"), target.get("expr", "")))
    return out


def to_promql(expr):
    """The expression with Grafana's variables replaced."""
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    return expr


def metric_names(expr):
    """The metric (or recorded series) names an expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"'(?:[^'\\]|\\.)*'", "''", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![0-9.A-Za-z_:])[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        rest = text[match.end():].lstrip()
        if rest.startswith("("):
            continue  # A function or an aggregation.
        if name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def load_rules(path):
    """(recording rules {name: expr}, alert rules {name: expr}) of a Prometheus rules file."""
    with open(path, encoding="utf-8") as f:
        document = yaml.safe_load(f)
    recording, alerts = {}, {}
    for group in document.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                recording[rule["record"]] = rule["expr"]
            else:
                alerts[rule["alert"]] = rule["expr"]
    return recording, alerts


def base_metric_names(names, recording):
    """Expands recorded series into the metric names their rules use, recursively."""
    out = set()
    pending = list(names)
    seen = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in recording:
            pending.extend(metric_names(recording[name]))
        else:
            out.add(name)
    return out


def exposition_name(name):
    """The family name a sample name belongs to (histogram _bucket/_sum/_count stripped)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
