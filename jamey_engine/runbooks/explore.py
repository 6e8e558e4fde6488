"""The exploration behind ``notebooks/explore_memories.ipynb``: what the memories hold, and what grows.

Each step asks ``Engine.analysis`` (memory.analysis) for a DataFrame, prints one plain line,
and returns the table; the ``*_chart`` methods draw it with plotly. Like the runbooks, a step
never raises a JameyError: the first one is printed and the later steps say they were skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from jamey_engine.durations import utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.memory.analysis import MemoryAnalysis, check_analysis_layer, parse_window
from jamey_engine.runbooks.common import NotebookRunbook, Say, engine_for
from jamey_engine.sizes import format_bytes

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from jamey_engine.engine import Engine

MAX_LENGTH_ROWS = 200_000
WEEK = timedelta(days=7)


class MemoryExplorer(NotebookRunbook):
    """Volume, hours, terms, lengths, duplicates and the oldest and newest memories of a window."""

    def __init__(self, engine: Engine | None, *, say: Say = print) -> None:
        super().__init__(engine, say=say)
        self.layer = "all"
        self.since: datetime = utcnow() - timedelta(days=30)
        self.until: datetime = utcnow()
        self.top = 20
        self.facts: dict[str, Any] = {}
        self.by_day: pd.DataFrame | None = None
        self.by_hour: pd.DataFrame | None = None
        self.terms: pd.DataFrame | None = None
        self.weekly: pd.DataFrame | None = None
        self.lengths_frame: pd.DataFrame | None = None
        self.repeats: pd.DataFrame | None = None

    @classmethod
    def open(
        cls,
        *,
        data_dir: str | Path | None = None,
        layer: str = "all",
        since: object = "30d",
        until: object = None,
        top: int = 20,
        say: Say = print,
    ) -> MemoryExplorer:
        """Check the parameters and open the engine; a bad parameter stops the report with its message.

        ``since`` and ``until`` take ISO 8601 times or durations (``30d``: 30 days ago); ``until``
        None means now. ``top`` is how many terms and repeated memories to show (1 to 1000).
        """
        explorer = cls(None, say=say)
        explorer.facts.update(
            {"layer": layer, "since": str(since), "until": None if until is None else str(until)}
        )

        def setup() -> None:
            check_analysis_layer(layer)
            if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 1000:
                raise InvalidInput(f"top {top!r} must be a whole number from 1 to 1000")
            start, end = parse_window(since, until if until not in (None, "") else utcnow())
            if start is None:
                raise InvalidInput("since must be a time or a duration such as 30d, not None")
            assert end is not None
            explorer.layer, explorer.since, explorer.until, explorer.top = layer, start, end, top
            explorer.engine = engine_for(data_dir)
            explorer.facts.update({"layer": layer, "since": start.isoformat(), "until": end.isoformat()})
            say(
                f"Exploring {layer} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC "
                f"in {explorer.engine.settings.data_dir}."
            )

        explorer._step("parameters", setup)
        return explorer

    @property
    def _analysis(self) -> MemoryAnalysis:
        return self._engine.analysis

    # -- volume ---------------------------------------------------------------------------
    def volume(self) -> pd.DataFrame | None:
        """Memories per day and layer in the window (a tantivy date histogram)."""

        def body() -> pd.DataFrame:
            frame = self._analysis.histogram(self.layer, "1d", since=self.since, until=self.until)
            self.by_day = frame
            total = int(frame["documents"].sum())
            self.facts["documents"] = total
            if total:
                per_day = frame.groupby("start")["documents"].sum()
                busiest = per_day.idxmax()
                self.facts["busiest_day"] = busiest.date().isoformat()
                self.facts["busiest_day_documents"] = int(per_day.max())
                self.say(
                    f"{total} memories in the window; the busiest day was {busiest:%Y-%m-%d} ({per_day.max()})."
                )
            else:
                self.facts["busiest_day"] = None
                self.say("No memories in the window.")
            return frame.pivot_table(
                index="start", columns="layer", values="documents", aggfunc="sum", observed=True
            )

        return self._step("volume", body)

    def volume_chart(self) -> go.Figure | None:
        """Memories per day, one bar colour per layer."""
        import plotly.express as px

        if self.by_day is None or self.by_day.empty:
            return None
        data = self.by_day[self.by_day["documents"] > 0] if self.layer == "all" else self.by_day
        return px.bar(data, x="start", y="documents", color="layer", title="Memories per day")

    def hours(self) -> pd.DataFrame | None:
        """Memories per day (rows) and hour of day (columns, UTC), summed over the layers."""

        def body() -> pd.DataFrame:
            frame = self._analysis.histogram(self.layer, "1h", since=self.since, until=self.until)
            frame = frame.assign(day=frame["start"].dt.floor("D"), hour=frame["start"].dt.hour)
            table = frame.pivot_table(
                index="day", columns="hour", values="documents", aggfunc="sum", fill_value=0
            )
            table = table.reindex(columns=range(24), fill_value=0)
            self.by_hour = table
            by_hour = table.sum()
            if by_hour.sum():
                self.facts["busiest_hour_utc"] = int(by_hour.idxmax())
                self.say(
                    f"The busiest hour of the day is {by_hour.idxmax():02d}:00 UTC ({by_hour.max()} memories)."
                )
            else:
                self.facts["busiest_hour_utc"] = None
            return table

        return self._step("hours", body)

    def hours_chart(self) -> go.Figure | None:
        """A heatmap of memories by day and hour of day."""
        import plotly.express as px

        if self.by_hour is None or self.by_hour.empty:
            return None
        table = self.by_hour.copy()
        table.index = [day.strftime("%Y-%m-%d") for day in table.index]
        return px.imshow(
            table,
            labels={"x": "hour of day (UTC)", "y": "day", "color": "memories"},
            aspect="auto",
            title="Memories by day and hour of day",
        )

    # -- terms ----------------------------------------------------------------------------
    def top_terms(self) -> pd.DataFrame | None:
        """The terms found in the most memories of the window, stop words left out."""

        def body() -> pd.DataFrame:
            terms = self._analysis.top_terms(self.layer, since=self.since, until=self.until, n=self.top)
            self.terms = terms
            self.facts["top_terms"] = terms["term"].head(10).tolist()
            how = "sampled" if terms.attrs.get("sampled") else "exact, from the index's term statistics"
            self.say(f"Top {len(terms)} terms ({how}).")
            return terms

        return self._step("top terms", body)

    def terms_by_week(self, terms: int = 10) -> pd.DataFrame | None:
        """Memories per week holding each of the top ``terms`` terms: rows are weeks (starting on
        the window's first day), columns terms."""

        def body() -> pd.DataFrame | None:
            if self.terms is None:
                raise InvalidInput("there are no top terms; run top_terms first")
            words = self.terms["term"].head(terms).tolist()
            if not words:
                return None
            rows = []
            start = self.since
            while start < self.until:
                end = min(start + WEEK, self.until)
                counts = self._analysis.term_counts(self.layer, words, since=start, until=end)
                rows.append(counts.set_index("term")["documents"].rename(pd.Timestamp(start).floor("D")))
                start = end
            table = pd.DataFrame(rows)
            table.index.name = "week"
            self.weekly = table
            if len(table) >= 2:
                change = table.iloc[-1] - table.iloc[-2]
                self.facts["rising_term"] = str(change.idxmax()) if change.max() > 0 else None
                self.say(
                    f"{len(table)} week(s). Since the week before, "
                    + (
                        f"{change.idxmax()!r} rose most (+{change.max()})."
                        if change.max() > 0
                        else "no term rose."
                    )
                )
            return table

        return self._step("terms by week", body)

    def terms_chart(self) -> go.Figure | None:
        """The top terms as bars."""
        import plotly.express as px

        if self.terms is None or self.terms.empty:
            return None
        return px.bar(
            self.terms, x="documents", y="term", orientation="h", title="Top terms (memories holding them)"
        )

    def terms_by_week_chart(self) -> go.Figure | None:
        """One line per top term across the weeks."""
        import plotly.express as px

        if self.weekly is None or self.weekly.empty:
            return None
        long = self.weekly.reset_index().melt(id_vars="week", var_name="term", value_name="documents")
        return px.line(
            long, x="week", y="documents", color="term", markers=True, title="Top terms week by week"
        )

    # -- lengths --------------------------------------------------------------------------
    def lengths(self) -> pd.DataFrame | None:
        """Content length (characters) per layer: count, mean, quartiles and max."""

        def body() -> pd.DataFrame:
            frame = self._analysis.memories_frame(
                self.layer,
                since=self.since,
                until=self.until,
                columns=["layer", "length"],
                limit=MAX_LENGTH_ROWS,
            )
            self.lengths_frame = frame
            if frame.attrs["left_out"]:
                self.say(
                    f"Lengths of the oldest {len(frame)} memories of the window; {frame.attrs['left_out']} "
                    "newer ones are left out."
                )
            self.facts["median_length"] = float(frame["length"].median()) if len(frame) else None
            return frame.groupby("layer", observed=True)["length"].describe()

        return self._step("lengths", body)

    def lengths_chart(self) -> go.Figure | None:
        """A histogram of content lengths, one colour per layer."""
        import plotly.express as px

        if self.lengths_frame is None or self.lengths_frame.empty:
            return None
        return px.histogram(
            self.lengths_frame, x="length", color="layer", nbins=50, title="Content length (characters)"
        )

    # -- duplicates -----------------------------------------------------------------------
    def duplicates(self) -> pd.DataFrame | None:
        """The share of each layer that repeats an earlier memory (all time, not just the window)."""

        def body() -> pd.DataFrame:
            found = self._analysis.duplicates(self.layer)
            self.repeats = found
            share = pd.DataFrame.from_dict(found.attrs["by_layer"], orient="index")
            share["share"] = (share["repeats"] / share["documents"]).fillna(0.0)
            share.index.name = "layer"
            self.facts["duplicate_share"] = round(float(found.attrs["share"]), 4)
            self.facts["duplicates"] = int(found.attrs["repeats"])
            self.facts["top_repeated"] = (
                {"content": str(found.iloc[0]["content"]), "count": int(found.iloc[0]["count"])}
                if len(found)
                else None
            )
            self.say(
                f"{found.attrs['repeats']} memories repeat an earlier one ({found.attrs['share']:.1%}), "
                f"{format_bytes(found.attrs['repeat_bytes'])} of content; "
                "notebooks/dedupe_memories.ipynb removes them."
            )
            return share

        return self._step("duplicates", body)

    def top_repeated(self) -> pd.DataFrame | None:
        """The most repeated memories: content, copies, first and last time, bytes of the repeats."""
        if self.repeats is None:
            return None
        return self.repeats.head(self.top)[["layer", "content", "count", "first", "last", "repeat_bytes"]]

    def duplicates_chart(self) -> go.Figure | None:
        """The share of each layer that repeats."""
        import plotly.express as px

        if self.repeats is None:
            return None
        by_layer = self.repeats.attrs["by_layer"]
        data = pd.DataFrame(
            [
                {"layer": layer, "share": (v["repeats"] / v["documents"]) if v["documents"] else 0.0}
                for layer, v in by_layer.items()
            ]
        )
        return px.bar(data, x="layer", y="share", title="Share of memories that repeat an earlier one")

    # -- ends -----------------------------------------------------------------------------
    def oldest_and_newest(self, count: int = 5) -> pd.DataFrame | None:
        """The ``count`` oldest and newest memories of the window."""

        def body() -> pd.DataFrame:
            frame = self._analysis.memories_frame(self.layer, since=self.since, until=self.until, limit=count)
            newest = []
            layers = check_analysis_layer(self.layer)
            for layer in layers:
                newest.extend(
                    self._engine.memory.search(
                        layer, "*", limit=count, order="newest", since=self.since, until=self.until
                    )
                )
            newest.sort(key=lambda memory: memory.timestamp, reverse=True)
            rows = [
                {"end": "oldest", **row}
                for row in frame[["layer", "timestamp", "content"]].to_dict("records")
            ]
            rows += [
                {
                    "end": "newest",
                    "layer": m.layer,
                    "timestamp": pd.Timestamp(m.timestamp),
                    "content": m.content,
                }
                for m in newest[:count]
            ]
            if rows:
                self.facts["oldest"] = pd.Timestamp(rows[0]["timestamp"]).isoformat()
                self.facts["newest"] = pd.Timestamp(newest[0].timestamp).isoformat() if newest else None
            else:
                self.facts["oldest"] = self.facts["newest"] = None
            return pd.DataFrame(rows, columns=["end", "layer", "timestamp", "content"])

        return self._step("oldest and newest", body)

    def summary(self) -> dict[str, Any]:
        """The findings as a dict (the record papermill leaves behind), with ``error`` when it stopped."""
        facts = {**self.facts, "error": self.error}
        if self.error:
            self.say(f"Summary: stopped at {self.stopped_at}: {self.error}")
        else:
            self.say(
                f"Summary: {facts.get('documents', 0)} memories; busiest day {facts.get('busiest_day')}; "
                f"{facts.get('duplicates', 0)} duplicates."
            )
        return facts
