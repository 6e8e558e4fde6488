"""The fast path answers keyed searches and stores exactly as the FastAPI routes do.

Two apps on one engine, one with the fast path and one without, get the same requests: valid
ones the fast path takes, and every kind it must hand on (extra or repeated parameters, a time
window, odd values, a timestamp, a body that is not a plain store). Their answers must match
(status, body, headers), each request must be counted once under its route, and a key's limit
must be charged once even when the fast path hands an authenticated store on to the route.
``http_fastpath_requests_total`` shows which requests the fast path answered itself, so each
comparison is known to set a fast answer beside a routed one (or two routed ones, when handed on).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_support import TestClient, make_persona, sample, service_settings, test_client

from jamey_engine.engine import Engine
from jamey_engine.service import create_app
from jamey_engine.service.fastpath import _search_params, _store_fields, body_bounded

VOLATILE = {"date", "ratelimit-remaining", "ratelimit-reset"}


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, Engine]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    engine = Engine(service_settings(data_dir))
    engine.memory.store_batch(
        "episodic",
        [
            {
                "content": f"deploy {word} rollback number {n}",
                "timestamp": f"2026-03-{1 + n % 28:02d}T10:00:00Z",
            }
            for n, word in enumerate(["alpha", "beta", "gamma", "delta"] * 10)
        ],
    )
    with test_client(create_app(engine)) as fast, test_client(create_app(engine, fast_path=False)) as slow:
        yield fast, slow, engine
    engine.close()


def _answer(response: Any) -> tuple[int, Any, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE}
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return response.status_code, body, headers


def _fast_answers(client: TestClient) -> float:
    """How many requests the client's app answered on its fast path, both routes together."""
    return sum(
        sample(client, "http_fastpath_requests_total", {"route": route})
        for route in ("/memories/search", "/memories")
    )


TAKEN_SEARCHES = [  # answered by the fast path, whatever the key
    "layer=episodic&q=deploy",
    "layer=episodic&q=rollback+alpha&limit=5",
    "layer=episodic&q=deploy&limit=1000&order=newest",
    "layer=episodic&q=%2A&order=score",
    "q=deploy&layer=episodic&limit=3",
    "layer=episodic&q=deploy+AND+(",  # a query tantivy refuses: the fast path answers the 400
    "layer=episodic&q=d%C3%A9ploy",  # non-ASCII beside a visible ASCII character
]
SEARCHES = [
    *TAKEN_SEARCHES,
    # handed on: each is answered (or refused) by the route
    "layer=episodic&q=deploy&since=2026-03-05T00:00:00Z&until=2026-03-09T00:00:00Z",
    "layer=episodic&q=deploy&since=2026-03-05T00:00:00Z&until=2026-03-05T00:00:00Z",
    "layer=episodic&q=deploy&limit=0",
    "layer=episodic&q=deploy&limit=1001",
    "layer=episodic&q=deploy&limit=010",
    "layer=episodic&q=deploy&limit=ten",
    "layer=episodic&q=deploy&order=oldest",
    "layer=episodic&q=deploy&layer=working",
    "layer=episodic&q=deploy&q=alpha",
    "layer=episodic&q=deploy&colour=blue",
    "layer=nowhere&q=deploy",
    "layer=episodic&q=",
    "layer=episodic&q=%20%20",
    "layer=episodic&q=%E3%80%80",  # an ideographic space: blank to the schema
    "layer=episodic&q=" + "x" * 2001,
    "layer=episodic",
    "q=deploy",
    "",
]


@pytest.mark.parametrize("query", SEARCHES)
def test_a_search_is_answered_the_same_with_and_without_the_fast_path(
    twins: tuple[TestClient, TestClient, Engine], query: str
) -> None:
    fast, slow, engine = twins
    reader = make_persona(engine, f"reader-{abs(hash(query))}", ("memory:read",))
    writer = make_persona(engine, f"writer-{abs(hash(query))}", ("memory:write",))
    for key in (reader, writer, None):  # allowed, forbidden (403), and no key (401)
        headers = key.headers if key else {}
        before = _fast_answers(fast)
        got = _answer(fast.get(f"/memories/search?{query}", headers=headers))
        taken = _fast_answers(fast) - before
        assert got == _answer(slow.get(f"/memories/search?{query}", headers=headers)), query
        assert taken == (1 if query in TAKEN_SEARCHES else 0), (query, key)
        assert _fast_answers(slow) == 0, "the app without a fast path answers everything by its routes"
        if key is reader and query == SEARCHES[0]:
            assert got[0] == 200 and len(got[1]["results"]) == 10


PLAIN_STORES: list[tuple[dict[str, str], Any]] = [  # stored by the fast path with a writer's key
    ({"content-type": "application/json"}, {"layer": "working", "content": "a plain store"}),
    ({"content-type": "application/json; charset=utf-8"}, {"layer": "working", "content": "with a charset"}),
    ({"content-type": "application/json"}, {"layer": "working", "content": "\u00e9t\u00e9"}),
]
STORES: list[tuple[dict[str, str], Any]] = [
    *PLAIN_STORES,
    # handed on after the key check
    (
        {"content-type": "application/json"},
        {"layer": "working", "content": "timed", "timestamp": "2026-01-02T03:04:05Z"},
    ),
    (
        {"content-type": "application/json"},
        {"layer": "working", "content": "timed", "timestamp": "1969-12-31T00:00:00Z"},
    ),
    ({"content-type": "application/json"}, {"layer": "working", "content": "x", "extra": 1}),
    ({"content-type": "application/json"}, {"layer": "nowhere", "content": "x"}),
    ({"content-type": "application/json"}, {"layer": "working", "content": ""}),
    ({"content-type": "application/json"}, {"layer": "working", "content": "\u3000"}),
    ({"content-type": "application/json"}, {"layer": "working", "content": 5}),
    ({"content-type": "application/json"}, {"layer": ["working"], "content": "x"}),
    ({"content-type": "application/json"}, {"layer": "working", "content": "y" * 70_000}),
    ({"content-type": "application/json"}, ["working", "x"]),
    ({"content-type": "application/json"}, "not json at all {"),
    ({"content-type": "text/plain"}, {"layer": "working", "content": "plain text type"}),
    ({}, {"layer": "working", "content": "no content type"}),
]


@pytest.mark.parametrize(("headers", "body"), STORES)
def test_a_store_is_answered_the_same_with_and_without_the_fast_path(
    twins: tuple[TestClient, TestClient, Engine], headers: dict[str, str], body: Any
) -> None:
    import json

    fast, slow, engine = twins
    writer = make_persona(engine, f"w-{abs(hash(json.dumps(body)))}", ("memory:write",))
    reader = make_persona(engine, f"r-{abs(hash(json.dumps(body)))}", ("memory:read",))
    raw = body if isinstance(body, str) else json.dumps(body)
    json_type = headers.get("content-type") in ("application/json", "application/json; charset=utf-8")
    plain = (headers, body) in PLAIN_STORES
    for key in (writer, reader, None):
        sent = {**headers, **(key.headers if key else {})}
        before = _fast_answers(fast)
        got = _answer(fast.post("/memories", content=raw, headers=sent))
        taken = _fast_answers(fast) - before
        want = _answer(slow.post("/memories", content=raw, headers=sent))
        # The fast path checks the key before it reads the body: it answers every refused key
        # itself, and a valid one's store only when the body is a plain store.
        assert taken == (1 if json_type and (plain or key is not writer) else 0), (body, headers, key)
        assert _fast_answers(slow) == 0
        if got[0] == 201:  # each store gets its own id: compare the shape, then the memory
            assert want[0] == 201 and got[2] == want[2]
            stored = engine.memory.get(body["layer"], got[1]["id"])
            assert stored.content == body["content"]
            if "timestamp" in body:
                assert stored.timestamp.isoformat() == body["timestamp"].replace("Z", "+00:00")
        else:
            assert got == want, (body, key)


def test_each_request_is_counted_once_under_its_route_whichever_path_answers(
    twins: tuple[TestClient, TestClient, Engine],
) -> None:
    fast, _, engine = twins
    reader = make_persona(engine, "counted", ("memory:read",))
    labels = {"method": "GET", "route": "/memories/search", "status": "200"}
    before, fast_before = sample(fast, "http_requests_total", labels), _fast_answers(fast)
    fast.get("/memories/search?layer=episodic&q=deploy", headers=reader.headers)  # fast
    fast.get(
        "/memories/search?layer=episodic&q=deploy&since=2026-03-01T00:00:00Z", headers=reader.headers
    )  # route
    assert sample(fast, "http_requests_total", labels) == before + 2
    assert _fast_answers(fast) == fast_before + 1, "one of the two took the fast path"


def test_a_store_handed_on_to_the_route_charges_the_key_once(
    twins: tuple[TestClient, TestClient, Engine],
) -> None:
    fast, _, engine = twins
    writer = make_persona(engine, "three-a-minute", ("memory:write",), rate_limit="3/minute")
    timed = {"layer": "working", "content": "timed", "timestamp": "2026-01-02T03:04:05Z"}
    answers = [fast.post("/memories", json=timed, headers=writer.headers).status_code for _ in range(4)]
    assert answers == [201, 201, 201, 429]


def test_the_fast_path_takes_only_what_the_route_surely_accepts() -> None:
    assert _search_params(b"layer=working&q=deploy&limit=10&order=newest") is not None
    assert _search_params(b"layer=working&q=deploy&since=2026-01-01T00:00:00Z") is None
    assert _search_params(b"layer=working&q=%E3%80%80%C3%A9") is None  # no visible ASCII character
    assert _store_fields(b'{"layer": "working", "content": "a"}', 10) == ("working", "a")
    assert _store_fields(b'{"layer": "working", "content": "abc"}', 2) is None  # over the length
    assert _store_fields(b'{"layer": "working", "content": "a", "timestamp": null}', 10) is None
    assert _store_fields('{"layer": "working", "content": "a"}'.encode("utf-16"), 10) is None  # the route's
    assert _store_fields(b'{"layer": "working", "content": NaN}', 10) is None


def test_only_a_body_its_framing_bounds_skips_the_body_limit() -> None:
    """The fast path leaves BodySizeLimit out only where the HTTP parser already bounds the body
    (a declared length within the limit, or no body); anything else keeps the bound, and its 413
    (tests/service/test_body_limit.py sends each kind to a real server)."""
    assert body_bounded([(b"host", b"x")], 100)  # no body at all
    assert body_bounded([(b"content-length", b"100")], 100)
    assert not body_bounded([(b"content-length", b"101")], 100)
    assert not body_bounded([(b"content-length", b"+10")], 100)
    assert not body_bounded([(b"content-length", b"10"), (b"content-length", b"10")], 100)
    assert not body_bounded([(b"transfer-encoding", b"chunked")], 100)
    assert not body_bounded([(b"content-length", b"10"), (b"transfer-encoding", b"chunked")], 100)
