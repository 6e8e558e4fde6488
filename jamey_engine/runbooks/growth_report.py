"""The growth report behind ``notebooks/memory_growth.ipynb``: gather, then hand to jamey_engine.growth.

Reads the index (``MemoryStore.sizes`` and ``growth``) and, when it answers, Prometheus'
history (``PromQuery.index_size`` and ``index_documents``). Prometheus being down is a note,
not an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from jamey_engine import growth
from jamey_engine.durations import days_before, utcnow
from jamey_engine.errors import InvalidInput, JameyError
from jamey_engine.runbooks.common import NotebookRunbook, Say, engine_for
from jamey_engine.sizes import format_bytes

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from jamey_engine.engine import Engine


class GrowthReport(NotebookRunbook):
    """Documents and bytes per layer over time, daily growth rates, and when 1 GiB is crossed."""

    def __init__(
        self, engine: Engine | None, *, days: int = 30, prometheus_url: str | None = None, say: Say = print
    ) -> None:
        super().__init__(engine, say=say)
        self.days = days
        self.prometheus_url = prometheus_url
        self.today = utcnow()
        self.current: pd.DataFrame | None = None
        self.history: pd.DataFrame | None = None
        self.prometheus: pd.DataFrame | None = None
        self.prometheus_samples: pd.DataFrame | None = None
        self.prometheus_note: str | None = None
        self.rates: pd.DataFrame | None = None
        self.rate_source: str | None = None
        self.projection: pd.DataFrame | None = None
        self.policy_frame: pd.DataFrame | None = None

    @classmethod
    def open(
        cls,
        *,
        data_dir: str | Path | None = None,
        days: int = 30,
        prometheus_url: str | None = None,
        say: Say = print,
    ) -> GrowthReport:
        """Check the parameters and open the engine; a bad parameter stops the report with its message."""
        report = cls(None, days=days, prometheus_url=prometheus_url, say=say)

        def setup() -> None:
            if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
                raise InvalidInput(f"days {days!r} must be a whole number above zero")
            report.engine = engine_for(data_dir)
            if not prometheus_url:
                report.prometheus_url = report.engine.settings.prometheus_url
            say(f"Memory growth over the last {days} days in {report.engine.settings.data_dir}.")

        report._step("parameters", setup)
        return report

    def index_history(self) -> pd.DataFrame | None:
        """Documents and (estimated) bytes per layer and day, counted from the index now, with a total."""

        def body() -> pd.DataFrame:
            memory = self._engine.memory
            self.current = growth.current_frame(memory.sizes())
            history = growth.index_history(
                memory.growth(self.days), self.current, days=self.days, today=self.today
            )
            self.history = growth.with_total(history)
            total = self.current["documents"].sum()
            self.say(
                f"{total} documents, {format_bytes(self.current['bytes'].sum())} in the index now. "
                "History is counted from the documents' timestamps; bytes are estimated from each layer's "
                "bytes per document now (Prometheus, below, has the measured sizes)."
            )
            return self.history

        return self._step("index history", body)

    def prometheus_history(self) -> pd.DataFrame | None:
        """Measured index bytes and documents per layer and day from Prometheus, or a note why not."""

        def body() -> pd.DataFrame | None:
            from jamey_engine.observability.promql import PromQuery

            settings = self._engine.settings
            query = PromQuery(self.prometheus_url or settings.prometheus_url, settings.prometheus_timeout)
            end = self.today
            start = days_before(end, self.days)
            try:
                sizes = query.index_size(start, end)
                documents = query.index_documents(start, end)
            except JameyError as err:
                self.prometheus_note = err.message
                self.say(f"Note: no Prometheus history ({err.message}). The index-based figures stand alone.")
                return None
            # Rates are fitted on every sample (exact times), the table and charts show one per day.
            self.prometheus_samples = growth.with_total(
                sizes.rename(columns={"timestamp": "day", "value": "bytes"})[["day", "layer", "bytes"]],
                ["bytes"],
            )
            daily = growth.prometheus_daily(sizes, value="bytes").merge(
                growth.prometheus_daily(documents, value="documents"), on=["day", "layer"], how="outer"
            )
            self.prometheus = growth.with_total(daily, ["bytes", "documents"])
            span = sizes["timestamp"].max() - sizes["timestamp"].min()
            self.say(
                f"Prometheus history from {query.shown_url}: {len(sizes)} samples over "
                f"{span.total_seconds() / 86400:.1f} day(s)."
            )
            return self.prometheus

        return self._step("prometheus history", body)

    def growth_rates(self) -> pd.DataFrame | None:
        """Documents and bytes per day for each layer and the total (fitted over the window).

        Bytes come from Prometheus' samples when they span at least a day, else from the index estimate.
        """

        def body() -> pd.DataFrame:
            if self.history is None:
                raise InvalidInput("there is no index history; run index_history first")
            rates = growth.growth_rates(self.history)
            self.rate_source = "the index (estimated bytes)"
            samples = self.prometheus_samples
            if samples is not None and samples["day"].max() - samples["day"].min() >= pd.Timedelta(days=1):
                measured = growth.daily_rates(samples, "bytes")
                rates["bytes_per_day"] = rates["layer"].map(measured).fillna(rates["bytes_per_day"])
                self.rate_source = "Prometheus (measured bytes)"
            self.rates = rates
            self.say(f"Daily growth rates; bytes per day from {self.rate_source}.")
            return rates

        return self._step("growth rates", body)

    def crossing(self) -> pd.DataFrame | None:
        """When each layer and the total cross the 1 GiB alert threshold at the current rate."""

        def body() -> pd.DataFrame:
            if self.current is None or self.rates is None:
                raise InvalidInput("there are no rates; run growth_rates first")
            now = dict(zip(self.current["layer"], self.current["bytes"], strict=True))
            now[growth.TOTAL] = int(self.current["bytes"].sum())
            per_day = dict(zip(self.rates["layer"], self.rates["bytes_per_day"], strict=True))
            projection = growth.project_crossing(now, per_day, today=self.today)
            self.projection = projection
            self._say_all(growth.describe_projection(projection))
            return projection

        return self._step("projection", body)

    def policy_projection(self, days_ahead: int | None = None) -> pd.DataFrame | None:
        """Each layer's projected size with and without its retention policy, at the current rates."""

        def body() -> pd.DataFrame:
            from jamey_engine.retention import RetentionPolicies

            if self.current is None or self.rates is None:
                raise InvalidInput("there are no rates; run growth_rates first")
            now = dict(zip(self.current["layer"], self.current["bytes"], strict=True))
            per_day = dict(zip(self.rates["layer"], self.rates["bytes_per_day"], strict=True))
            policies = {
                info.layer: (
                    info.max_age.total_seconds() / 86400 if info.max_age else None,
                    float(info.max_bytes) if info.max_bytes else None,
                )
                for info in RetentionPolicies(self._engine.db).show()
            }
            self.policy_frame = growth.project_with_policies(
                now, per_day, policies, days=days_ahead or max(self.days * 3, 90), today=self.today
            )
            self._say_all(growth.describe_policy_projection(self.policy_frame))
            return self.policy_frame

        return self._step("projection with policies", body)

    def policy_chart(self) -> go.Figure | None:
        """Projected size per layer without (dotted) and with (solid) its policy, with the 1 GiB alert."""
        import plotly.express as px

        frame = self.policy_frame
        if frame is None or frame.empty:
            return None
        long = frame.melt(id_vars=["day", "layer"], value_vars=["without", "with"], var_name="policy")
        fig = px.line(
            long, x="day", y="value", color="layer", line_dash="policy",
            title="Projected size without and with each layer's retention policy",
        )  # fmt: skip
        fig.add_hline(
            y=growth.ALERT_THRESHOLD_BYTES,
            line_dash="dash",
            line_color="#d62728",
            annotation_text="1 GiB alert",
        )
        return fig

    def chart(self, frame: pd.DataFrame | None, *, y: str, title: str) -> go.Figure | None:
        """A plotly line chart of ``y`` per day, one line per layer; None when there is nothing to draw."""
        import plotly.express as px

        if frame is None or frame.empty or y not in frame.columns:
            return None
        data = frame.dropna(subset=[y])
        return px.line(data, x="day", y=y, color="layer", markers=True, title=title)

    def crossing_chart(self) -> go.Figure | None:
        """Projected size of each layer and the total up to the crossing (or the window ahead), with 1 GiB."""
        import plotly.express as px

        if self.projection is None or self.projection.empty:
            return None
        ahead = self.days
        crossing_days = self.projection["days_left"].dropna()
        if not crossing_days.empty:
            ahead = max(ahead, min(int(crossing_days.max()) + 1, 3650))
        rows = []
        start = growth.utc_day(self.today)
        for row in self.projection.itertuples(index=False):
            rate = 0.0 if pd.isna(row.bytes_per_day) else max(float(row.bytes_per_day), 0.0)
            for offset in (0, ahead):
                rows.append(
                    {
                        "day": start + pd.Timedelta(days=offset),
                        "layer": row.layer,
                        "bytes": row.bytes + rate * offset,
                    }
                )
        fig = px.line(
            pd.DataFrame(rows), x="day", y="bytes", color="layer", title="Projected size at the current rate"
        )
        fig.add_hline(
            y=growth.ALERT_THRESHOLD_BYTES,
            line_dash="dash",
            line_color="#d62728",
            annotation_text="1 GiB alert",
        )
        return fig

    def wide(self, frame: pd.DataFrame | None, value: str) -> pd.DataFrame | None:
        """``value`` as a table with a row per day and a column per layer (total last), for reading."""
        if frame is None or frame.empty or value not in frame.columns:
            return None
        table = frame.pivot_table(index="day", columns="layer", values=value, aggfunc="last")
        order = sorted(table.columns, key=lambda layer: growth.layer_sort_key(str(layer)))
        table = table[order]
        table.index = [day.date() for day in table.index]
        table.index.name = "day"
        table.columns.name = None
        return table
