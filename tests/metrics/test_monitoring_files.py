"""The compose `monitoring` profile, the Prometheus scrape config and the Grafana dashboard and
provisioning, checked offline (Docker does not run here): they parse, reference files that exist,
and the dashboard is Grafana dashboard JSON over our metrics (their names are checked against a
real scrape in test_fleet_metrics.py)."""

from __future__ import annotations

import json
import re

import yaml

from tests.support.services import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DASHBOARD = ROOT / "deploy" / "grafana" / "rlm-engine.json"
METRIC = re.compile(r"\brlm_[a-z0-9_]+")


def dashboard_metric_names() -> set[str]:
    """Every `rlm_...` sample name the dashboard's PromQL uses."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        name for panel in dashboard["panels"] for t in panel["targets"] for name in METRIC.findall(t["expr"])
    }


def monitoring_services() -> dict[str, dict]:
    return {name: s for name, s in COMPOSE["services"].items() if "monitoring" in s.get("profiles", [])}


def test_the_profile_runs_prometheus_and_grafana_over_files_that_exist():
    services = monitoring_services()
    assert set(services) == {"prometheus", "grafana"}
    for name, service in services.items():
        assert service["image"].split(":")[0] in ("prom/prometheus", "grafana/grafana"), name
        assert ":" in service["image"] and not service["image"].endswith(":latest"), "pin the image"
        assert service["restart"] == "unless-stopped"
        published = service["ports"][0]
        assert published.startswith("${") and "127.0.0.1:" in published, "loopback by default"
        for volume in service["volumes"]:
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
            else:
                assert source in COMPOSE["volumes"], source
    prometheus_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    assert prometheus_mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in " ".join(services["prometheus"]["command"])
    grafana_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert grafana_mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert grafana_mounts["/var/lib/grafana/dashboards/rlm-engine.json"] == "./deploy/grafana/rlm-engine.json"
    # The default stack is unchanged: no service of the default profile depends on monitoring.
    for name, service in COMPOSE["services"].items():
        if name not in services:
            assert not set(service.get("depends_on", {})) & set(services), name


def test_workers_serve_metrics_where_prometheus_looks():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["rlm-web"]["static_configs"][0]["targets"] == ["web:8000"]
    for name in ("root", "llm"):
        (discovery,) = jobs[f"rlm-{name}"]["dns_sd_configs"]
        assert discovery["names"] == [name] and discovery["type"] == "A"
        port = COMPOSE["services"][name]["environment"]["WORKER_METRICS_PORT"]
        assert port == f"${{WORKER_METRICS_PORT:-{discovery['port']}}}"
    for job in jobs.values():
        assert job["metrics_path"] == "/metrics"
        # compose's entrypoint writes METRICS_TOKEN to this file before Prometheus starts
        token_file = job["authorization"]["credentials_file"]
        assert token_file in " ".join(COMPOSE["services"]["prometheus"]["command"])
        assert token_file.startswith("/prometheus/")  # the writable data volume


def test_grafana_provisions_the_datasource_and_the_dashboard():
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "rlm-engine.yml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"

    dashboard = json.loads(DASHBOARD.read_text())
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 30
    assert dashboard["uid"] and dashboard["title"] == "RLM Engine"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["type"] in ("timeseries", "stat", "gauge", "bargauge", "table"), panel["title"]
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert (
            set(panel["gridPos"]) == {"h", "w", "x", "y"}
            and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        )
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert METRIC.search(target["expr"]), target
            assert target["expr"].count("(") == target["expr"].count(")"), target


def test_the_dashboard_covers_what_operators_asked_for():
    names = dashboard_metric_names()
    assert names >= {
        "rlm_executions_total",
        "rlm_subcall_duration_seconds_bucket",
        "rlm_model_tokens_total",
        "rlm_model_cost_usd_total",
        "rlm_queue_depth",
        "rlm_live_sandboxes",
        "rlm_guard_trips_total",
        "rlm_model_errors_total",
        "rlm_api_request_duration_seconds_bucket",
    }
    exprs = " ".join(t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"])
    assert "histogram_quantile(0.5, sum by (le, model)" in exprs
    assert "histogram_quantile(0.95, sum by (le, model)" in exprs
    assert "sum by (le, route)" in exprs
