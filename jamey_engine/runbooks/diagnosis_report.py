"""The diagnosis notebook's steps (notebooks/diagnose_alert.ipynb): open, gather, draw, summarize.

:class:`AlertDiagnosis` wraps :func:`jamey_engine.runbooks.diagnosis.diagnose` the way the other
notebook runbooks wrap theirs: each step prints plainly and never raises a JameyError, and the
last cell returns :meth:`AlertDiagnosis.summary` (``verdict``, ``evidence``,
``suggested_runbook``), which the runner stores on the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from jamey_engine.runbooks.common import NotebookRunbook, Say, engine_for
from jamey_engine.runbooks.diagnosis import Diagnosis, diagnose, parse_labels

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from jamey_engine.engine import Engine


class AlertDiagnosis(NotebookRunbook):
    """One alert's diagnosis, step by step, for a notebook."""

    def __init__(self, engine: Engine | None, *, say: Say = print) -> None:
        super().__init__(engine, say=say)
        self.result: Diagnosis | None = None

    @classmethod
    def open(
        cls,
        *,
        alertname: str,
        labels: str = "{}",
        starts_at: str = "",
        data_dir: str | Path | None = None,
        prometheus_url: str | None = None,
        say: Say = print,
    ) -> AlertDiagnosis:
        """Check the parameters, open the engine and gather the evidence; a bad parameter stops
        the diagnosis with its message (and the summary carries it as ``error``)."""
        report = cls(None, say=say)

        def gather() -> None:
            from jamey_engine.observability.promql import PromQuery

            given = parse_labels(labels)
            report.engine = engine_for(data_dir)
            settings = report.engine.settings
            with PromQuery(prometheus_url or settings.prometheus_url, settings.prometheus_timeout) as prom:
                report.result = diagnose(report.engine, prom, alertname, given, starts_at or None)
            found = report.result
            say(
                f"{found.alertname} ({found.family}), firing since {found.starts_at:%Y-%m-%d %H:%M:%S} UTC; "
                f"evidence gathered at {found.gathered_at:%H:%M:%S} UTC in {found.seconds:.1f} s."
            )
            for note in found.notes:
                say(f"note: {note}")

        report._step("gathering the evidence", gather)
        return report

    def verdict(self) -> str | None:
        """The verdict sentence (printed), or None when the diagnosis stopped."""
        if self.result is None:
            return None
        self.say(self.result.verdict)
        return self.result.verdict

    def evidence(self) -> pd.DataFrame:
        """The named facts, one row each (fact, value)."""
        facts = self.result.summary()["evidence"] if self.result else {}
        return pd.DataFrame(
            [{"fact": k, "value": str(v)} for k, v in facts.items()], columns=["fact", "value"]
        )

    def charts(self) -> list[go.Figure]:
        """One plotly line chart per Prometheus series gathered, with the firing time marked."""
        import plotly.express as px

        figures: list[go.Figure] = []
        if self.result is None:
            return figures
        for query, frame in self.result.series.values():
            color = query.labels[0] if query.labels else None
            figure = px.line(frame, x="timestamp", y="value", color=color, title=query.title)
            figure.add_vline(x=self.result.starts_at.timestamp() * 1000, line_dash="dash", line_color="red")
            figures.append(figure)
        if not figures:
            self.say("No Prometheus series to draw (see the notes above).")
        return figures

    def table(self, name: str) -> pd.DataFrame:
        """One of the gathered tables: ``operations``, ``keys``, ``layers``, ``backups``, ``changes``."""
        if self.result is None:
            return pd.DataFrame()
        frame = getattr(self.result, name)
        assert isinstance(frame, pd.DataFrame)
        return frame

    def log_lines(self) -> list[str]:
        """The service's noteworthy log lines (printed); none when its log is not readable."""
        lines = self.result.log_lines if self.result else []
        for line in lines:
            self.say(line)
        if self.result is not None and not lines:
            self.say("No warning or error in the service's log (or its log is not readable here).")
        return lines

    def summary(self) -> dict[str, Any]:
        """The run's summary: the diagnosis's, or ``error`` when it stopped."""
        if self.result is None:
            return {"verdict": None, "evidence": {}, "suggested_runbook": None, "error": self.error}
        return self.result.summary()
