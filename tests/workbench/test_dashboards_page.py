"""The dashboards against a real Prometheus with 7 days of data (tests/promserver.py), and
against none at all."""

from __future__ import annotations

import pytest
from promserver import PromServer
from streamlit.testing.v1 import AppTest

from jamey_engine.observability import promql

from .conftest import figures, open_page, texts

CHARTS = 8


def test_every_chart_draws_with_a_legend_csv_and_prometheus_link(
    prom_env: PromServer, admin_app: AppTest
) -> None:
    open_page(admin_app, "dashboards")
    assert not admin_app.exception, admin_app.exception
    assert not admin_app.error, [e.value for e in admin_app.error]
    specs = figures(admin_app)
    assert len(specs) == CHARTS
    for spec in specs:
        assert spec["layout"]["showlegend"] is True
        assert all(trace.get("showlegend") for trace in spec["data"])
    assert len(admin_app.get("download_button")) == CHARTS
    links = [el.proto.url for el in admin_app.get("link_button")]
    assert len(links) == CHARTS
    assert all(link.startswith(prom_env.url + "/graph?g0.expr=") for link in links)


def test_threshold_lines_sit_inside_the_y_range(prom_env: PromServer, admin_app: AppTest) -> None:
    open_page(admin_app, "dashboards")
    by_first_trace = {tuple(t["name"] for t in spec["data"]): spec for spec in figures(admin_app)}
    error_rate = next(
        spec
        for names, spec in by_first_trace.items()
        if names[0] == "5xx share" and len(names) == 2 and "error-rate" in names[1]
    )
    low, high = error_rate["layout"]["yaxis"]["range"]
    assert low <= promql.ERROR_RATE_THRESHOLD < high
    threshold = error_rate["data"][-1]
    assert threshold["y"] == [promql.ERROR_RATE_THRESHOLD, promql.ERROR_RATE_THRESHOLD]
    latency = next(spec for names, spec in by_first_trace.items() if "quantile=0.95" in names)
    assert [t["name"] for t in latency["data"]][:3] == ["quantile=0.5", "quantile=0.95", "quantile=0.99"]
    low, high = latency["layout"]["yaxis"]["range"]
    assert low <= promql.P95_LATENCY_THRESHOLD < high
    index = next(spec for names, spec in by_first_trace.items() if "layer=working" in names)
    low, high = index["layout"]["yaxis"]["range"]
    assert low <= promql.INDEX_SIZE_THRESHOLD < high, "1 GiB is shown although every layer is far below it"


def test_request_rate_is_by_status(prom_env: PromServer, admin_app: AppTest) -> None:
    open_page(admin_app, "dashboards")
    names = [[t["name"] for t in spec["data"]] for spec in figures(admin_app)]
    assert ["status=200", "status=201", "status=400", "status=429", "status=500"] in names


def test_the_range_comes_from_and_goes_to_the_url(prom_env: PromServer, admin_app: AppTest) -> None:
    admin_app.query_params["range"] = "7d"
    open_page(admin_app, "dashboards")
    assert not admin_app.exception, admin_app.exception
    assert admin_app.session_state["dash_range"] == "7d"
    assert admin_app.query_params["range"] == "7d"
    assert len(figures(admin_app)) == CHARTS
    admin_app.get("button_group")[0].set_value("15m").run()
    assert admin_app.query_params["range"] == "15m"


def test_a_custom_range_is_validated_inline(prom_env: PromServer, admin_app: AppTest) -> None:
    open_page(admin_app, "dashboards")
    admin_app.get("button_group")[0].set_value("custom").run()
    admin_app.text_input(key="dash_start").input("2026-13-01").run()
    assert not admin_app.exception
    assert any("start '2026-13-01' is not an ISO 8601 timestamp" in e.value for e in admin_app.error)
    assert figures(admin_app) == []


def test_a_range_before_any_data_says_no_data_not_unreachable(
    prom_env: PromServer, admin_app: AppTest
) -> None:
    admin_app.query_params.update(range="custom", start="2020-01-01T00:00:00Z", end="2020-01-02T00:00:00Z")
    open_page(admin_app, "dashboards")
    assert not admin_app.exception, admin_app.exception
    assert not admin_app.error, [e.value for e in admin_app.error]
    assert len(admin_app.info) == CHARTS
    assert all(i.value.startswith("No data for") for i in admin_app.info)


def test_a_shared_link_can_open_one_chart(prom_env: PromServer, admin_app: AppTest) -> None:
    admin_app.query_params.update(range="6h", chart="error_rate")
    open_page(admin_app, "dashboards")
    assert len(figures(admin_app)) == 1
    assert admin_app.query_params["chart"] == "error_rate"
    admin_app.button(key="show_all").click().run()
    assert len(figures(admin_app)) == CHARTS


@pytest.mark.usefixtures("wb_env")
def test_unreachable_prometheus_says_where_and_how_to_start_it(admin_app: AppTest) -> None:
    open_page(admin_app, "dashboards")
    assert not admin_app.exception, admin_app.exception
    errors = [e.value for e in admin_app.error]
    assert len(errors) == 1, errors
    assert "Prometheus unreachable at http://127.0.0.1:" in errors[0]
    assert "make run" in errors[0]
    assert "No data" not in texts(admin_app)
    assert admin_app.get("button_group"), "the range controls still work"


def test_auto_refresh_is_kept_in_the_url(prom_env: PromServer, admin_app: AppTest) -> None:
    open_page(admin_app, "dashboards")
    admin_app.selectbox(key="dash_refresh").set_value("30s").run()
    assert not admin_app.exception, admin_app.exception
    assert admin_app.query_params["refresh"] == "30s"
    assert len(figures(admin_app)) == CHARTS
