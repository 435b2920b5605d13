"""deploy/: the Grafana dashboard and the Prometheus rules use only metrics /metrics has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from aiweb.app import create_app
from aiweb.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\baiweb_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exposed(settings: Settings) -> set[str]:
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
        resp = client.get("/metrics")
    assert resp.status_code == 200
    names = set()
    for family in text_string_to_metric_families(resp.text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


def base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def used_in_dashboard() -> set[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "aiweb-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    return {m for e in exprs for m in METRIC.findall(e)}


def used_in_rules() -> set[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert {r["alert"] for g in rules["groups"] for r in g["rules"]} >= {
        "AiwebHighErrorRate",
        "AiwebHighP99Latency",
        "AiwebModelDrift",
        "AiwebLiveAccuracyDrop",
    }
    return {m for e in exprs for m in METRIC.findall(e)}


def test_every_metric_in_deploy_exists(settings: Settings) -> None:
    names = exposed(settings)
    families = {base(n) for n in names}
    for used in sorted(used_in_dashboard() | used_in_rules()):
        assert used in names or base(used) in families, f"{used} is not exposed by /metrics"


def test_dashboard_covers_every_aiweb_metric(settings: Settings) -> None:
    ours = {base(n) for n in exposed(settings) if n.startswith("aiweb_")}
    shown = {base(n) for n in used_in_dashboard()}
    assert ours <= shown, f"not on the dashboard: {sorted(ours - shown)}"


def test_prometheus_config_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
