"""Memories as data, for analysts: DataFrames, histograms, top terms and duplicates.

``MemoryAnalysis`` reads a ``MemoryStore`` through its public API and tantivy's own
statistics, so counting happens in the index, not in a Python loop:

- ``memories_frame`` streams stored documents in time order, a chunk at a time, into a
  pandas DataFrame (``id``, ``layer``, ``timestamp``, ``content``, ``length``);
- ``histogram`` is a tantivy ``date_histogram`` aggregation on the timestamp fast field;
- ``top_terms`` reads the term dictionary's document frequencies under a window filter;
- ``duplicates`` groups memories whose normalized content is equal (see ``memory.dedupe``).

Windows are ``since`` (inclusive) to ``until`` (exclusive), to the second. Each accepts an ISO 8601
time, a datetime, or a duration such as ``7d`` meaning that long before now. The layer ``"all"``
means every layer. Bad input raises InvalidInput with a one-line message naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import tantivy

from jamey_engine.durations import parse_duration, utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.memory.layers import LAYERS, MAX_QUERY_CHARS
from jamey_engine.memory.model import check_timestamp
from jamey_engine.memory.schema import CONTENT, ID, TIMESTAMP, window_query

if TYPE_CHECKING:
    from jamey_engine.memory.store import MemoryStore

ALL = "all"
COLUMNS: tuple[str, ...] = ("id", "layer", "timestamp", "content", "length")
INTERVALS: dict[str, str] = {"1d": "1d", "1h": "1h"}
CHUNK = 20_000
MAX_TERMS = 1000

# English function words (the usual search-engine list plus a few contractions' halves):
# frequent everywhere, so they say nothing about what a layer holds.
_STOP_TEXT = """
    a about above after again against all am an and any are aren as at be because been before being below
    between both but by can cannot could couldn d did didn do does doesn doing don down during each few for
    from further had hadn has hasn have haven having he her here hers herself him himself his how i if in
    into is isn it its itself just ll m me more most mustn my myself no nor not now o of off on once only
    or other our ours ourselves out over own re s same shan she should shouldn so some such t than that the
    their theirs them themselves then there these they this those through to too under until up ve very
    was wasn we were weren what when where which while who whom why will with won would wouldn y you your
    yours yourself yourselves also into via per get got its us
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


def check_analysis_layer(layer: object) -> tuple[str, ...]:
    """The layers ``layer`` names: ``"all"`` is every layer. InvalidInput for anything else."""
    if layer == ALL:
        return LAYERS
    if not isinstance(layer, str) or layer not in LAYERS:
        raise InvalidInput(f"layer {layer!r} is not one of: {ALL}, {', '.join(LAYERS)}")
    return (layer,)


def parse_when(value: object, *, field: str) -> datetime | None:
    """None, an ISO 8601 time, a datetime, a date (its UTC midnight), or a duration (``7d``: 7 days ago).

    Raises InvalidInput naming ``field`` and the value when it is none of these.
    """
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str) and value.strip() and value.strip()[-1:].lower() in "smhdw":
        text = value.strip()
        if text[:1].isdigit() and not text[:4].isdigit():  # "7d", not "2026-01-01"
            try:
                return utcnow() - parse_duration(text, field=field)
            except OverflowError:
                raise InvalidInput(f"{field} {value!r} is too long ago") from None
    if not isinstance(value, str | datetime):
        raise InvalidInput(
            f"{field} {value!r} is not a time; use ISO 8601 (2026-01-31T12:00:00Z) or a duration (7d)"
        )
    try:
        return check_timestamp(value, field=field)
    except InvalidInput:
        raise InvalidInput(
            f"{field} {value!r} is not a time; use ISO 8601 (2026-01-31T12:00:00Z) or a duration (7d)"
        ) from None


def parse_window(since: object, until: object) -> tuple[datetime | None, datetime | None]:
    """Both ends of a window, checked: InvalidInput when since is not before until."""
    start = parse_when(since, field="since")
    end = parse_when(until, field="until")
    if start is not None and end is not None and start >= end:
        raise InvalidInput(f"since {start.isoformat()} must be before until {end.isoformat()}")
    return start, end


def _both(first: tantivy.Query, second: tantivy.Query) -> tantivy.Query:
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, first), (tantivy.Occur.Must, second)])


def _from_ns(nanoseconds: int) -> datetime:
    return datetime.fromtimestamp(nanoseconds // 1_000_000_000, UTC)


def iter_addresses(searcher: Any, query: tantivy.Query, chunk: int = CHUNK) -> Iterator[list[Any]]:
    """The documents ``query`` matches in ``searcher``, oldest first, ``chunk`` addresses at a time.

    Keyset paging on the timestamp fast field (to the second): each page starts at the last
    page's timestamp and skips the documents already given at that second, so memory stays
    bounded by ``chunk`` whatever the index holds. One searcher: a consistent snapshot.
    """
    last: int | None = None
    seen_at_last = 0
    while True:
        page_query = query if last is None else _both(query, window_query(_from_ns(last), None))
        hits = searcher.search(
            page_query,
            chunk,
            count=False,
            order_by_field=TIMESTAMP,
            order=tantivy.Order.Asc,
            offset=seen_at_last,
        ).hits
        if not hits:
            return
        yield [address for _, address in hits]
        if len(hits) < chunk:
            return
        newest = int(hits[-1][0])
        at_newest = sum(1 for key, _ in hits if int(key) == newest)
        seen_at_last = at_newest + (seen_at_last if newest == last else 0)
        last = newest


def _page_frame(searcher: Any, addresses: list[Any], layer: str, columns: Sequence[str]) -> pd.DataFrame:
    ids, contents, stamps = [], [], []
    doc = searcher.doc
    for address in addresses:
        document = doc(address)
        ids.append(document.get_first(ID))
        contents.append(document.get_first(CONTENT))
        stamps.append(document.get_first(TIMESTAMP))
    data: dict[str, Any] = {}
    for column in columns:
        if column == "id":
            data["id"] = pd.array(ids, dtype="str")
        elif column == "layer":
            data["layer"] = pd.Categorical([layer] * len(ids), categories=LAYERS)
        elif column == "timestamp":
            data["timestamp"] = pd.DatetimeIndex(stamps).as_unit("us")
        elif column == "content":
            data["content"] = pd.array(contents, dtype="str")
        elif column == "length":
            data["length"] = pd.array([len(text) for text in contents], dtype="int64")
    return pd.DataFrame(data, columns=list(columns))


def _empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    kinds = {
        "id": pd.Series([], dtype="str"),
        "layer": pd.Series(pd.Categorical([], categories=LAYERS)),
        "timestamp": pd.Series([], dtype="datetime64[us, UTC]"),
        "content": pd.Series([], dtype="str"),
        "length": pd.Series([], dtype="int64"),
    }
    return pd.DataFrame({column: kinds[column] for column in columns}, columns=list(columns))


class MemoryAnalysis:
    """Read-only analysis of a MemoryStore's layers (see the module docstring). Thread-safe."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def _index(self, layer: str) -> tantivy.Index:
        """``layer``'s on-disk index after flushing its write-ahead log (so every acknowledged
        write is in what the analysis reads)."""
        self.store.flush_layer(layer)
        return self.store.index(layer)

    def _query(self, index: tantivy.Index, query: object) -> tantivy.Query | None:
        if query is None:
            return None
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("query must be tantivy query text (use * to match every memory) or None")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
        if query.strip() == "*":
            return None
        try:
            return index.parse_query(query, [CONTENT])
        except ValueError as err:
            raise InvalidInput(f"query {query!r} is malformed: {err}") from None

    def memories_frame(
        self,
        layer: str,
        since: object = None,
        until: object = None,
        query: str | None = None,
        columns: Sequence[str] = COLUMNS,
        limit: int | None = None,
        *,
        chunk: int = CHUNK,
    ) -> pd.DataFrame:
        """Memories of ``layer`` (or ``"all"``) in the window as a DataFrame, oldest first.

        Columns (any subset of, in the order given): ``id``, ``layer`` (categorical),
        ``timestamp`` (UTC, to the microsecond), ``content`` and ``length`` (characters).
        ``query`` is tantivy query syntax over the content. Documents are read ``chunk`` at a
        time, so the working memory beyond the frame itself stays bounded. With ``limit``, the
        oldest ``limit`` rows are kept; ``frame.attrs`` holds ``matched`` (rows the window and
        query match), ``returned`` and ``left_out`` (rows the limit cut). Raises InvalidInput for
        an unknown layer or column, a bad time, a malformed query, or a limit below 1.
        """
        layers = check_analysis_layer(layer)
        start, end = parse_window(since, until)
        if isinstance(columns, str) or not columns:
            raise InvalidInput(f"columns {columns!r} must be a list of: {', '.join(COLUMNS)}")
        unknown = [c for c in columns if c not in COLUMNS]
        if unknown:
            raise InvalidInput(f"column {unknown[0]!r} is not one of: {', '.join(COLUMNS)}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidInput(f"limit {limit!r} must be a whole number above zero, or None for all")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise InvalidInput(f"chunk {chunk!r} must be a whole number above zero")
        window = window_query(start, end)
        frames: list[pd.DataFrame] = []
        matched = 0
        for name in layers:
            index = self._index(name)
            parsed = self._query(index, query)
            selected = window if parsed is None else _both(parsed, window)
            searcher = index.searcher()
            try:
                matched += _matching(searcher, selected)
                taken = 0
                for addresses in iter_addresses(searcher, selected, min(chunk, limit or chunk)):
                    if limit is not None:
                        addresses = addresses[: limit - taken]
                    frames.append(_page_frame(searcher, addresses, name, columns))
                    taken += len(addresses)
                    if limit is not None and taken >= limit:
                        break
            except ValueError as err:
                raise InvalidInput(f"query {query!r} cannot run: {err}") from None
        frames = [frame for frame in frames if len(frame)]
        frame = pd.concat(frames, ignore_index=True) if frames else _empty_frame(columns)
        if "timestamp" in frame.columns:  # pages are in order to the second; this orders within it
            frame = frame.sort_values("timestamp", kind="stable", ignore_index=True)
        if limit is not None and len(frame) > limit:
            frame = frame.iloc[:limit].reset_index(drop=True)
        frame.attrs.update({"matched": matched, "returned": len(frame), "left_out": matched - len(frame)})
        return frame

    def histogram(
        self, layer: str, interval: str = "1d", since: object = None, until: object = None
    ) -> pd.DataFrame:
        """Documents per ``interval`` ("1d" or "1h", UTC) per layer, by memory timestamp.

        A tantivy date_histogram aggregation on the timestamp fast field, not a loop over
        documents. Columns: ``start`` (UTC bucket start), ``layer``, ``documents``; empty buckets
        inside the window (or between a layer's first and last memory) are rows with 0. Raises
        InvalidInput for an unknown layer, a bad interval or a bad time.
        """
        layers = check_analysis_layer(layer)
        if interval not in INTERVALS:
            raise InvalidInput(f"interval {interval!r} must be one of: {', '.join(INTERVALS)}")
        start, end = parse_window(since, until)
        step = pd.Timedelta(interval)
        spec: dict[str, Any] = {
            "field": TIMESTAMP,
            "fixed_interval": INTERVALS[interval],
            "min_doc_count": 0,
        }
        if start is not None and end is not None:
            first = pd.Timestamp(start).floor(step)
            last = (pd.Timestamp(end) - pd.Timedelta(microseconds=1)).floor(step)
            spec["extended_bounds"] = {"min": first.value // 1_000_000, "max": last.value // 1_000_000}
        query = window_query(start, end)
        rows: list[tuple[pd.Timestamp, str, int]] = []
        for name in layers:
            searcher = self._index(name).searcher()
            if not searcher.num_docs:
                buckets = []
            else:
                buckets = searcher.aggregate(query, {"histogram": {"date_histogram": spec}})["histogram"][
                    "buckets"
                ]
            if not buckets and "extended_bounds" in spec:
                bounds = pd.date_range(first, last, freq=step)
                rows.extend((stamp, name, 0) for stamp in bounds)
                continue
            rows.extend(
                (pd.Timestamp(int(bucket["key"]), unit="ms", tz=UTC), name, int(bucket["doc_count"]))
                for bucket in buckets
            )
        frame = pd.DataFrame(rows, columns=["start", "layer", "documents"])
        frame["start"] = pd.to_datetime(frame["start"], utc=True).dt.as_unit("s")
        frame["documents"] = frame["documents"].astype("int64")
        return frame

    def top_terms(self, layer: str, since: object = None, until: object = None, n: int = 50) -> pd.DataFrame:
        """The ``n`` content terms found in the most memories of the window, stop words left out.

        Counts are document frequencies (memories holding the term at least once, as tantivy's
        tokenizer splits and lowercases them), read from the term dictionary under the window
        filter: exact, never sampled (across layers too: each layer's top list is widened until
        no term outside the lists could rank). Numbers and one-letter terms are left out with the
        stop words. Columns: ``term``, ``documents``, ``share`` (of the window's memories);
        ``attrs`` holds ``documents`` (the window's memories), ``method`` and ``sampled`` (False).
        Raises InvalidInput for an unknown layer, a bad time, or n outside 1..1000.
        """
        layers = check_analysis_layer(layer)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_TERMS:
            raise InvalidInput(f"n {n!r} must be a whole number from 1 to {MAX_TERMS}")
        start, end = parse_window(since, until)
        query = window_query(start, end)
        searchers = [self._index(name).searcher() for name in layers]
        documents = sum(_matching(searcher, query) for searcher in searchers)
        searchers = [searcher for searcher in searchers if searcher.num_docs]
        wanted = n
        while True:
            # Each layer's top terms, then exact totals for every candidate. With several layers a
            # term below every layer's cut could still add up to more than the n-th candidate, so
            # widen until the candidates' n-th total beats the sum of the layers' cuts.
            tops = [_layer_top_terms(searcher, query, wanted) for searcher in searchers]
            candidates = sorted({term for top, _ in tops for term in top})
            counts = {
                term: sum(
                    top[term] if term in top else _term_count(searcher, query, term) if cut else 0
                    for searcher, (top, cut) in zip(searchers, tops, strict=True)
                )
                for term in candidates
            }
            best = sorted(counts.values(), reverse=True)
            unseen_at_most = sum(cut for _, cut in tops)
            if len(tops) <= 1 or (len(best) >= n and best[n - 1] >= unseen_at_most) or not unseen_at_most:
                break
            wanted *= 4
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
        frame = pd.DataFrame(ranked, columns=["term", "documents"])
        frame["documents"] = frame["documents"].astype("int64")
        frame["share"] = frame["documents"] / documents if documents else 0.0
        frame.attrs.update({"documents": documents, "method": "term statistics", "sampled": False})
        return frame

    def term_counts(
        self, layer: str, terms: Sequence[str], since: object = None, until: object = None
    ) -> pd.DataFrame:
        """Memories of the window holding each of ``terms`` (exact, from the term dictionary).

        Terms are matched as the index stores them (lowercase tokens). Columns: ``term``,
        ``documents``, in the order given. Raises InvalidInput for an unknown layer, a bad time
        or more than 1000 terms.
        """
        layers = check_analysis_layer(layer)
        if isinstance(terms, str) or len(terms) > MAX_TERMS:
            raise InvalidInput(f"terms must be a list of at most {MAX_TERMS} words")
        query = window_query(*parse_window(since, until))
        counts = dict.fromkeys((str(term).lower() for term in terms), 0)
        for name in layers:
            searcher = self._index(name).searcher()
            if not searcher.num_docs:
                continue
            for term in counts:
                counts[term] += _term_count(searcher, query, term)
        frame = pd.DataFrame(list(counts.items()), columns=["term", "documents"])
        frame["documents"] = frame["documents"].astype("int64")
        return frame

    def duplicates(self, layer: str, normalize: bool = True) -> pd.DataFrame:
        """Groups of memories with equal content (after normalization), biggest first.

        See ``memory.dedupe.find_duplicates``: one row per group with ``layer``, ``content``
        (the oldest copy's text), ``count``, ``first``, ``last``, ``repeat_bytes`` (UTF-8 bytes of
        the copies after the oldest) and ``keep_id``. ``attrs`` holds per-call totals:
        ``documents``, ``groups``, ``repeats``, ``repeat_bytes`` and ``share`` (repeats over
        documents). Raises InvalidInput for an unknown layer or a non-boolean ``normalize``.
        """
        from jamey_engine.memory.dedupe import duplicates_frame, find_duplicates

        layers = check_analysis_layer(layer)
        if not isinstance(normalize, bool):
            raise InvalidInput(f"normalize {normalize!r} must be True or False")
        found = [find_duplicates(self._index(name).searcher(), name, normalize=normalize) for name in layers]
        return duplicates_frame(found)


def _matching(searcher: Any, query: tantivy.Query) -> int:
    """Documents of ``searcher`` that ``query`` matches (counted by tantivy, none fetched)."""
    return int(searcher.search(query, 1, count=True).count)


def _layer_top_terms(searcher: Any, query: tantivy.Query, wanted: int) -> tuple[dict[str, int], int]:
    """At least ``wanted`` content terms of one layer with their counts (fewer if it has fewer),
    and the count at the cut (0 when every term of the window was seen)."""
    ask = wanted + 200
    while True:
        pairs = searcher.terms_with_prefix(CONTENT, "", filter_query=query, limit=ask)
        kept = {term: int(count) for term, count in pairs if count and _is_content_term(term)}
        if len(pairs) < ask:
            return kept, 0
        if len(kept) >= wanted:
            return kept, int(pairs[-1][1])
        ask *= 4  # mostly stop words so far: ask for more


def _term_count(searcher: Any, query: tantivy.Query, term: str) -> int:
    """Memories of the window in one layer holding exactly ``term``."""
    return sum(
        int(count)
        for found, count in searcher.terms_with_prefix(CONTENT, term, filter_query=query)
        if found == term
    )


def _is_content_term(term: str) -> bool:
    return len(term) > 1 and term not in STOP_WORDS and not term.isdigit()
