"""The dashboard's numbers: histogram quantiles, the HTTP summary, the heatmap, traffic
and daily accuracy, against hand-computed values; and the vendored front-end files."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from aiweb.dashboard import views
from aiweb.db.base import Base
from aiweb.db.orm import SqlFeedback, SqlPrediction
from aiweb.db.session import make_engine, make_session_factory
from aiweb.monitoring.stats import PredictionStats

VENDOR = Path(views.__file__).parent / "static" / "vendor"


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    # 10 observations <= 0.1, 10 more <= 0.2, none above: the median is the 0.1 bound,
    # the 75th percentile half-way through the second bucket
    buckets = [(0.1, 10.0), (0.2, 20.0), (float("inf"), 20.0)]
    assert views.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert views.histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert views.histogram_quantile(0.25, buckets) == pytest.approx(0.05)
    assert views.histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    # ranks in the +Inf bucket answer the highest finite bound, as Prometheus does
    assert views.histogram_quantile(0.99, [(0.1, 1.0), (float("inf"), 10.0)]) == 0.1


PREDICT = "/v1/models/{name}/predict"


def _bucket(route: str, method: str, status: str, le: str, value: float) -> str:
    labels = f'route="{route}",method="{method}",status="{status}",le="{le}"'
    return f"aiweb_http_request_duration_seconds_bucket{{{labels}}} {value}"


def _requests(route: str, method: str, status: str, value: float) -> str:
    return (
        f'aiweb_http_requests_total{{route="{route}",method="{method}",status="{status}"}} {value}'
    )


EXPOSITION = "\n".join(
    [
        "# TYPE aiweb_http_requests_total counter",
        _requests(PREDICT, "POST", "200", 8),
        _requests(PREDICT, "POST", "503", 2),
        _requests("/v1/jobs", "GET", "200", 10),
        _requests("/metrics", "GET", "200", 99),
        "# TYPE aiweb_http_request_duration_seconds histogram",
        _bucket(PREDICT, "POST", "200", "0.01", 5),
        _bucket(PREDICT, "POST", "200", "0.1", 8),
        _bucket(PREDICT, "POST", "200", "+Inf", 8),
        _bucket(PREDICT, "POST", "503", "0.01", 0),
        _bucket(PREDICT, "POST", "503", "0.1", 2),
        _bucket(PREDICT, "POST", "503", "+Inf", 2),
        _bucket("/v1/jobs", "GET", "200", "0.01", 10),
        _bucket("/v1/jobs", "GET", "200", "0.1", 10),
        _bucket("/v1/jobs", "GET", "200", "+Inf", 10),
        "",
    ]
)


def test_http_summary_counts_v1_routes_errors_and_quantiles() -> None:
    summary = views.http_summary(EXPOSITION)
    assert summary["requests"] == 20  # /metrics is not API traffic
    assert summary["errors"] == 2
    assert summary["error_rate"] == pytest.approx(0.1)
    predict = summary["routes"][0]
    assert predict["route"] == "/v1/models/{name}/predict"
    assert (predict["requests"], predict["errors"]) == (10, 2)
    # predict: 5 of 10 under 10 ms, all under 100 ms -> median at the 10 ms bound
    assert predict["p50_ms"] == pytest.approx(10.0)
    # p95 rank 9.5 lies in (0.01, 0.1] holding ranks 5..10 -> 10 + 90 * 4.5/5 = 91 ms
    assert predict["p95_ms"] == pytest.approx(91.0)
    # overall: 15 of 20 under 10 ms; median rank 10 -> 10 ms * 10/15
    assert summary["p50_ms"] == pytest.approx(10.0 * 10 / 15)
    empty = views.http_summary("")
    assert empty["requests"] == 0
    assert empty["error_rate"] is None


def test_heatmap_shades_by_share_of_the_true_label() -> None:
    rows = views.heatmap({"labels": ["neg", "pos"], "matrix": [[9, 1], [0, 0]]})
    assert [c["heat"] for c in rows[0]["cells"]] == [9, 1]
    assert rows[0]["cells"][0]["share"] == pytest.approx(0.9)
    assert rows[1]["total"] == 0
    assert [c["heat"] for c in rows[1]["cells"]] == [0, 0]
    assert views.heatmap({"labels": ["a"], "matrix": [[3]]})[0]["cells"][0]["heat"] == 9


def test_flatten_lineage() -> None:
    flat = views.flatten({"dataset": "sst2", "params": {"C": 2.0, "x": None}, "tags": [1, 2]})
    assert flat == [("dataset", "sst2"), ("params.C", "2.0"), ("params.x", ""), ("tags", "1, 2")]


@pytest.fixture
def sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'v.db'}")
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def test_traffic_counts_per_hour_and_latency_quantiles(sessions) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 11, 21, 12, 30, tzinfo=UTC)
    rows = []
    for i, (minutes_ago, latency) in enumerate([(5, 1.0), (10, 3.0), (70, 2.0), (25 * 60, 9.0)]):
        rows.append(
            {
                "id": f"p{i}",
                "model": "sentiment",
                "version": 1,
                "label": "positive",
                "scores": {"positive": 1.0},
                "latency_ms": latency,
                "input_sha256": "0" * 64,
                "created_at": now - timedelta(minutes=minutes_ago),
            }
        )
    with sessions() as session, session.begin():
        session.execute(insert(SqlPrediction), rows)
    stats = PredictionStats(sessions).traffic(now=now)
    sentiment = stats["models"]["sentiment"]
    assert sentiment["n"] == 3  # the one of 25 h ago is outside the window
    assert sentiment["per_hour"][-1] == 2  # 12:25 and 12:20 in the 12:00 hour
    assert sentiment["per_hour"][-2] == 1  # 11:20
    assert sum(sentiment["per_hour"]) == 3
    assert sentiment["p50_ms"] == pytest.approx(2.0)
    assert sentiment["p95_ms"] == pytest.approx(2.9)  # numpy's linear method on 1, 2, 3
    assert stats["hours"][-1] == "2026-11-21T12:00:00+00:00"
    assert len(stats["hours"]) == 24


def test_daily_accuracy_from_feedback(sessions) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    rows = []
    for i, (days_ago, right) in enumerate([(0, True), (0, False), (0, True), (2, False)]):
        at = now - timedelta(days=days_ago)
        rows.append(
            {
                "prediction_id": f"p{i}",
                "model": "m",
                "version": 3,
                "predicted_label": "a",
                "label": "a" if right else "b",
                "submitted_by": "t",
                "predicted_at": at,
                "created_at": at,
            }
        )
    with sessions() as session, session.begin():
        session.execute(insert(SqlFeedback), rows)
    series = PredictionStats(sessions).accuracy_series("m", 3, now=now)
    assert series["days"][-1] == "2026-11-21"
    assert series["n"][-1] == 3
    assert series["accuracy"][-1] == pytest.approx(2 / 3, abs=1e-4)
    assert series["n"][-3] == 1
    assert series["accuracy"][-3] == 0.0
    assert series["accuracy"][-2] is None


def test_vendored_files_match_the_recorded_digests() -> None:
    readme = (VENDOR / "README.md").read_text()
    recorded = dict(re.findall(r"- `([^`]+\.js)`: `([0-9a-f]{64})`", readme))
    assert set(recorded) == {"htmx-2.0.11.min.js", "chart-4.6.1.umd.min.js"}
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    base = (Path(views.__file__).parent / "templates" / "base.html").read_text()
    for name in recorded:
        assert f"/static/vendor/{name}" in base
