"""Workbench: server-side render time of every page with 7 days of Prometheus data.

Each page is rendered with Streamlit's AppTest (the script run the server does for a browser,
without the network and the browser's own drawing), signed in as an admin, on a data dir with
keys, memories and backups, against the test suite's Prometheus (tests/promserver.py) with 7
days backfilled. Two numbers per page, each the median of several renders:
- cold: every cache cleared first (engine, PromQuery, query results), the worst case;
- warm: the page rendered again within the query cache's TTL, what a user clicking around sees.
Each number is a script run in an already open tab (AppTest's one-time setup excluded).
Baseline: the sign-in page (the floor: a Streamlit script run with the session guard). Target (issue
7): no page over 1.5 s. Run alone: ``.venv/bin/python -m bench.bench_workbench [--quick]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import Row, cli, row

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TARGET_SECONDS = 1.5
TITLES = {
    "signin": "Jamey ops workbench",
    "overview": "Overview",
    "dashboards": "Dashboards",
    "alerts": "Alerts",
    "keys": "API keys",
    "memory": "Memory",
    "backups": "Backups",
}
PAGES: tuple[tuple[str, dict[str, str]], ...] = (
    ("overview", {}),
    ("dashboards", {"range": "7d"}),
    ("dashboards", {"range": "1h"}),
    ("alerts", {}),
    ("keys", {}),
    ("memory", {}),
    ("backups", {}),
)


def _seed(data_dir: Path, keys: int, memories: int, backups: int) -> str:
    from jamey_engine.config import Settings
    from jamey_engine.durations import utcnow
    from jamey_engine.engine import Engine

    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        admin = engine.keys.create("bench-admin", scopes=("admin",), actor="bench").key
        for index in range(keys):
            engine.keys.create(f"bench-key-{index}", actor="bench")
        now = utcnow()
        for layer_index, layer in enumerate(("working", "episodic", "semantic")):
            engine.memory.store_batch(
                layer,
                [
                    {
                        "content": f"bench memory {i} about deploys",
                        "timestamp": now - timedelta(hours=i + layer_index),
                    }
                    for i in range(memories)
                ],
            )
        for _ in range(backups):
            engine.vault.create()
        return admin
    finally:
        engine.close()


class _Health(BaseHTTPRequestHandler):
    """A stand-in service /health, so the overview's probe does a real round trip."""

    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _session(admin_key: str) -> Any:
    """A signed-in WorkbenchSession, as the sign-in form would store it."""
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine
    from workbench_ui.session import WorkbenchSession

    settings = Settings.from_env()
    engine = Engine(settings)
    try:
        return WorkbenchSession.sign_in(engine.keys, admin_key, timedelta(hours=12))
    finally:
        engine.close()


def _tab(session: Any, page: str, params: dict[str, str]) -> Any:
    """A browser tab on ``page`` (an AppTest), signed in when ``session`` is given, run once so
    AppTest's own one-time setup is out of the timings."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    if session is not None:
        at.session_state["workbench_session"] = session
    at.query_params.update(params)
    if page != "signin":
        at.switch_page(f"pages/{page}.py")
    at.run()
    _check(at, page)
    return at


def _check(at: Any, page: str) -> None:
    if at.exception:
        raise RuntimeError(f"{page} raised: {at.exception}")
    errors = [e.value for e in at.error]
    if errors:
        raise RuntimeError(f"{page} showed errors: {errors}")
    titles = [t.value for t in at.title]
    if titles != [TITLES[page]]:
        raise RuntimeError(f"{page} rendered {titles}, not its own page")
    if page == "dashboards" and len(at.get("plotly_chart")) != 8:
        raise RuntimeError(f"dashboards drew {len(at.get('plotly_chart'))} charts, not 8")


def _render(at: Any, page: str, *, cold: bool) -> float:
    """Seconds for one script run of the page (a rerun, as a click or a refresh does)."""
    import streamlit as st

    if cold:
        st.cache_data.clear()
        st.cache_resource.clear()
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    _check(at, page)
    return elapsed


def main(quick: bool = False) -> list[Row]:
    """Render every page ``repeat`` times cold and warm; one row per page and mode."""
    import os

    sys.path.insert(0, str(ROOT / "tests"))
    import amserver
    import promserver

    days = 0.25 if quick else 7.0
    repeat = 1 if quick else 5
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-workbench-") as tmp:
        server = promserver.start_prometheus(Path(tmp) / "prometheus", days=days)
        # The alerts page reads a real Alertmanager (and shows an error without one).
        alertmanager = amserver.start_alertmanager(Path(tmp) / "alertmanager")
        health = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
        threading.Thread(target=health.serve_forever, daemon=True).start()
        saved = dict(os.environ)
        try:
            data_dir = Path(tmp) / "data"
            data_dir.mkdir()
            admin = _seed(
                data_dir, keys=5 if quick else 50, memories=50 if quick else 2000, backups=1 if quick else 3
            )
            os.environ.update(
                {
                    "JAMEY_DATA_DIR": str(data_dir),
                    "PROMETHEUS_URL": server.url,
                    "PROMETHEUS_TIMEOUT": "10",
                    "ALERTMANAGER_URL": alertmanager.url,
                    "JAMEY_SERVICE_URL": f"http://127.0.0.1:{health.server_address[1]}",
                }
            )
            session = _session(admin)
            bare = _tab(None, "signin", {})
            baseline = statistics.median(_render(bare, "signin", cold=False) for _ in range(repeat))
            span = "7 days" if not quick else f"{days * 24:g} h"
            for page, params in PAGES:
                name = page + (f" ({params['range']})" if "range" in params else "")
                tab = _tab(session, page, params)
                cold = statistics.median(_render(tab, page, cold=True) for _ in range(repeat))
                _render(tab, page, cold=False)  # fill the caches
                warm = statistics.median(_render(tab, page, cold=False) for _ in range(repeat))
                for mode, value in (("cold", cold), ("warm", warm)):
                    rows.append(
                        row(
                            f"workbench page {name}",
                            f"render seconds, {mode} caches ({span} of data)",
                            value,
                            baseline=baseline,
                            target=f"< {TARGET_SECONDS} s",
                            met=value < TARGET_SECONDS,
                            higher_is_better=False,
                        )
                    )
        finally:
            os.environ.clear()
            os.environ.update(saved)
            import streamlit as st

            st.cache_resource.clear()
            health.shutdown()
            health.server_close()
            server.stop()
            alertmanager.stop()
    return rows


if __name__ == "__main__":
    cli(main)
