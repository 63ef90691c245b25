"""Metrics, alerts, dashboard and tracing configuration agree with what the services export,
without Prometheus, Grafana or a collector: every alert and panel names only metrics the
services serve; the trace context is validated in the envelope; OTEL_* picks the exporter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric
from ruamel.yaml import YAML

from envol_shared.contracts import enrolment as ev
from envol_shared.events import InvalidEvent, make_event, parse_event
from envol_shared.metrics import ServiceMetrics
from envol_shared.tracing import build_tracer_provider, outgoing_traceparent

ROOT = Path(__file__).resolve().parents[2]
YAML_SAFE = YAML(typ="safe")
SERVICES = {"enrolment", "financing", "export", "outcomes"}
# PromQL words (functions, aggregations, operators) that are not metric names.
PROMQL = {"sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "and", "or", "unless",
          "rate", "increase", "deriv", "delta", "histogram_quantile", "label_values", "group_left",
          "group_right", "bool", "offset", "min_over_time", "max_over_time", "avg_over_time", "le"}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def exported() -> set[str]:
    """Every sample name a service's registry can serve."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    families: list[Metric] = list(ServiceMetrics("enrolment").registry.collect())
    return {family.name + suffix for family in families for suffix in suffixes[family.type]}


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression: its words, once strings, label matchers,
    ranges, groupings, numbers and Grafana's variables are taken out."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", "", expr)
    expr = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", "", expr)
    return {word for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr) if word not in PROMQL}


def alert_rules() -> list[dict]:
    document = YAML_SAFE.load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_alert_names_only_metrics_the_services_export() -> None:
    names = exported()
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= {"EnvolConsumerStalled", "EnvolOutboxStuck",
                                                  "EnvolOutboxGrowing", "EnvolDeadLetters",
                                                  "EnvolLeaseFlapping"}
    for rule in rules:
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= names, f"{rule['alert']} names {sorted(used - names)}, which no service exports"


def test_a_misspelt_metric_would_be_caught() -> None:
    assert metric_names('sum by (service) (increase(envol_dead_leters_total{x="y"}[5m])) > 0') == {
        "envol_dead_leters_total"}
    assert "envol_dead_leters_total" not in exported()


def test_prometheus_scrapes_the_four_services_and_loads_the_alerts() -> None:
    config = YAML_SAFE.load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    [dns] = job["dns_sd_configs"]
    assert set(dns["names"]) == SERVICES and dns["port"] == 8080


def test_the_compose_profile_mounts_the_configuration() -> None:
    compose = YAML_SAFE.load((ROOT / "docker-compose.yml").read_text())["services"]
    assert compose["prometheus"]["profiles"] == compose["grafana"]["profiles"] == ["observability"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in compose["prometheus"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in compose["grafana"]["volumes"]
    provider = YAML_SAFE.load((ROOT / "deploy/grafana/provisioning/dashboards/envol.yml").read_text())
    assert "./deploy/grafana/dashboards:" + provider["providers"][0]["options"]["path"] + ":ro" in (
        compose["grafana"]["volumes"])
    assert all("observability" not in spec.get("profiles", []) for name, spec in compose.items()
               if name in SERVICES)


def test_every_dashboard_panel_reads_exported_metrics_from_the_provisioned_source() -> None:
    provisioning = ROOT / "deploy/grafana/provisioning"
    [source] = YAML_SAFE.load((provisioning / "datasources/prometheus.yml").read_text())["datasources"]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/envol.json").read_text())
    names, shown = exported(), set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
        for target in panel["targets"]:
            used = metric_names(target["expr"])
            assert used and used <= names, (panel["title"], sorted(used - names))
            shown |= used
    # Every family is on the dashboard (a histogram through one of its series at least).
    families = {family.name for family in ServiceMetrics("enrolment").registry.collect()}
    assert {family for family in families if not any(name.startswith(family) for name in shown)} == set()


def envelope(**extra: str) -> bytes:
    data = ev.CompanyRegistered(company_id="732829320", legal_name="Figeac", region="Occitanie",
                                clusters=["aerospace-valley"], staff_awu=42.0, turnover_cents=1,
                                balance_sheet_cents=1, accounts_year=2025)
    _, event = make_event(data, cluster="aerospace-valley", producer="staff", company="732829320")
    return json.dumps(json.loads(event.to_bytes()) | extra).encode()


SUBJECT = "envol.aerospace-valley.staff.company.registered"


def test_the_trace_context_is_optional_and_validated() -> None:
    assert b"traceparent" not in envelope()  # absent unless given
    assert parse_event(envelope(), SUBJECT).envelope.traceparent is None
    assert parse_event(envelope(traceparent=TRACEPARENT), SUBJECT).envelope.traceparent == TRACEPARENT
    for wrong in (TRACEPARENT.upper(), "01" + TRACEPARENT[2:], TRACEPARENT[:-1], TRACEPARENT + "0", "",
                  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"):
        with pytest.raises(InvalidEvent, match="traceparent"):
            parse_event(envelope(traceparent=wrong), SUBJECT)


def test_with_tracing_off_an_emitted_event_keeps_the_incoming_trace() -> None:
    assert outgoing_traceparent(TRACEPARENT) == TRACEPARENT
    assert outgoing_traceparent(None) is None


def test_otel_variables_choose_the_exporter_and_the_service_name() -> None:
    assert build_tracer_provider("enrolment", {}) is None
    assert build_tracer_provider("enrolment", {"OTEL_TRACES_EXPORTER": "none"}) is None
    for environ, name in (({"OTEL_TRACES_EXPORTER": "otlp"}, "envol-enrolment"),
                          ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "e1"}, "e1")):
        provider = build_tracer_provider("enrolment", environ)
        try:
            assert provider.resource.attributes["service.name"] == name
            # Recording (no span ended here: OTLP would try to send it to a collector).
            assert provider.get_tracer("test").start_span("x").is_recording()
        finally:
            provider.shutdown()
