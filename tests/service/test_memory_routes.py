"""Memory routes over HTTP on the real tantivy store: store, batch, search, get, delete, sizes, bad input."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from service_support import Persona, TestClient

from jamey_engine.engine import Engine


def store(client: TestClient, persona: Persona, layer: str, content: str, **extra: object) -> str:
    response = client.post(
        "/memories", json={"layer": layer, "content": content, **extra}, headers=persona.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_stored_memory_can_be_read_back_and_found(
    client: TestClient, writer_key: Persona, reader_key: Persona
) -> None:
    marker = f"zebra{uuid.uuid4().hex[:8]}"
    memory_id = store(
        client, writer_key, "episodic", f"saw a {marker} at the zoo", timestamp="2026-01-02T03:04:05Z"
    )
    got = client.get(f"/memories/episodic/{memory_id}", headers=reader_key.headers)
    assert got.status_code == 200, got.text
    assert got.json()["content"] == f"saw a {marker} at the zoo"
    assert got.json()["timestamp"].startswith("2026-01-02T03:04:05")
    found = client.get(
        "/memories/search", params={"layer": "episodic", "q": marker}, headers=reader_key.headers
    )
    assert found.status_code == 200, found.text
    results = found.json()["results"]
    assert [r["id"] for r in results] == [memory_id]
    assert set(results[0]) == {"id", "layer", "content", "timestamp", "score"}
    assert results[0]["layer"] == "episodic" and results[0]["score"] > 0


def test_a_batch_is_stored_in_order(client: TestClient, writer_key: Persona, reader_key: Persona) -> None:
    marker = f"batch{uuid.uuid4().hex[:8]}"
    items = [{"content": f"{marker} item {n}", "timestamp": f"2026-02-0{n + 1}T00:00:00Z"} for n in range(3)]
    response = client.post(
        "/memories/batch", json={"layer": "semantic", "items": items}, headers=writer_key.headers
    )
    assert response.status_code == 201, response.text
    ids = response.json()["ids"]
    assert len(ids) == 3
    newest = client.get(
        "/memories/search",
        params={"layer": "semantic", "q": marker, "order": "newest", "limit": 2},
        headers=reader_key.headers,
    ).json()["results"]
    assert [r["id"] for r in newest] == [ids[2], ids[1]]


def test_search_can_filter_by_time(client: TestClient, writer_key: Persona, reader_key: Persona) -> None:
    marker = f"when{uuid.uuid4().hex[:8]}"
    old = store(client, writer_key, "long_term", f"{marker} old", timestamp="2020-01-01T00:00:00Z")
    new = store(client, writer_key, "long_term", f"{marker} new", timestamp="2025-01-01T00:00:00Z")
    params = {"layer": "long_term", "q": marker, "since": "2024-01-01T00:00:00Z"}
    results = client.get("/memories/search", params=params, headers=reader_key.headers).json()["results"]
    assert [r["id"] for r in results] == [new]
    params = {"layer": "long_term", "q": marker, "until": "2024-01-01T00:00:00Z"}
    results = client.get("/memories/search", params=params, headers=reader_key.headers).json()["results"]
    assert [r["id"] for r in results] == [old]


def test_delete_removes_a_memory_then_404s(
    client: TestClient, writer_key: Persona, admin_key: Persona
) -> None:
    memory_id = store(client, writer_key, "working", "to be forgotten")
    deleted = client.delete(f"/memories/working/{memory_id}", headers=writer_key.headers)
    assert deleted.status_code == 204
    assert client.get(f"/memories/working/{memory_id}", headers=admin_key.headers).status_code == 404
    again = client.delete(f"/memories/working/{memory_id}", headers=writer_key.headers)
    assert again.status_code == 404
    assert memory_id in again.json()["error"]


def test_sizes_list_every_layer(client: TestClient, writer_key: Persona, reader_key: Persona) -> None:
    store(client, writer_key, "short_term", "counted in the sizes")
    response = client.get("/memories/sizes", headers=reader_key.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["layers"]) == {"short_term", "long_term", "working", "episodic", "semantic"}
    assert body["layers"]["short_term"]["documents"] >= 1
    assert body["total_documents"] == sum(layer["documents"] for layer in body["layers"].values())
    assert body["total_bytes"] > 0


def test_admin_can_read_and_write_memories(client: TestClient, admin_key: Persona) -> None:
    memory_id = store(client, admin_key, "working", "admin implies write")
    assert client.get(f"/memories/working/{memory_id}", headers=admin_key.headers).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"layer": "dreams", "content": "x"}, 422, "layer"),
        ({"layer": "working", "content": ""}, 422, "content"),
        ({"layer": "working", "content": "   "}, 422, "content"),
        ({"layer": "working"}, 422, "content"),
        ({"layer": "working", "content": "x", "timestamp": "yesterday"}, 422, "timestamp"),
        ({"layer": "working", "content": "x", "timestamp": "0001-01-01T00:00:00Z"}, 422, "timestamp"),
        ({"layer": "working", "content": "x", "timestamp": 0}, 422, "timestamp"),
        ({"layer": "working", "content": 12}, 422, "content"),
        ([1, 2], 422, "body"),
    ],
)
def test_bad_store_input_is_a_4xx_naming_the_field(
    client: TestClient, writer_key: Persona, body: object, status: int, named: str
) -> None:
    response = client.post("/memories", json=body, headers=writer_key.headers)
    assert response.status_code == status, response.text
    assert named in response.json()["error"]


def test_oversized_content_is_a_413_naming_the_field(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client(JAMEY_MAX_CONTENT_BYTES="100")
    writer = engine.keys.create("w", scopes=("memory:write",), rate_limit="1000/minute")
    response = client.post(
        "/memories", json={"layer": "working", "content": "é" * 51}, headers={"X-API-Key": writer.key}
    )
    assert response.status_code == 413, response.text
    assert "content" in response.json()["error"] and "JAMEY_MAX_CONTENT_BYTES" in response.json()["error"]


def test_a_body_over_the_bound_is_refused_before_it_is_read(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client(JAMEY_MAX_BODY_BYTES="1000")
    writer = engine.keys.create("w", scopes=("memory:write",), rate_limit="1000/minute")
    headers = {"X-API-Key": writer.key}
    response = client.post("/memories", json={"layer": "working", "content": "x" * 2000}, headers=headers)
    assert response.status_code == 413, response.text

    def chunks():  # no Content-Length: the bound is enforced while reading
        for _ in range(10):
            yield b" " * 500

    streamed = client.post(
        "/memories", content=chunks(), headers={**headers, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text
    assert engine.memory.sizes().total_documents == 0


@pytest.mark.parametrize(
    ("params", "status", "named"),
    [
        ({"layer": "working", "q": "x", "limit": "0"}, 422, "limit"),
        ({"layer": "working", "q": "x", "limit": "1001"}, 422, "limit"),
        ({"layer": "working", "q": "x", "limit": "ten"}, 422, "limit"),
        ({"layer": "working"}, 422, "q"),
        ({"layer": "working", "q": ""}, 422, "q"),
        ({"layer": "nope", "q": "x"}, 422, "layer"),
        ({"layer": "working", "q": "   "}, 422, "q"),
        ({"layer": "working", "q": "x", "order": "random"}, 422, "order"),
    ],
)
def test_bad_search_input_is_a_4xx_naming_the_field(
    client: TestClient, reader_key: Persona, params: dict[str, str], status: int, named: str
) -> None:
    response = client.get("/memories/search", params=params, headers=reader_key.headers)
    assert response.status_code == status, response.text
    assert named in response.json()["error"]


def test_a_bad_memory_id_or_layer_in_the_path_is_a_4xx(client: TestClient, reader_key: Persona) -> None:
    bad_id = client.get("/memories/working/not-a-uuid", headers=reader_key.headers)
    assert bad_id.status_code == 422 and "memory_id" in bad_id.json()["error"]
    bad_layer = client.get(f"/memories/dreams/{uuid.uuid4()}", headers=reader_key.headers)
    assert bad_layer.status_code == 422 and "layer" in bad_layer.json()["error"]
    missing = client.get(f"/memories/working/{uuid.uuid4()}", headers=reader_key.headers)
    assert missing.status_code == 404


def test_an_empty_batch_or_a_bad_item_stores_nothing(
    client: TestClient, writer_key: Persona, reader_key: Persona
) -> None:
    marker = f"batched{uuid.uuid4().hex[:8]}"
    empty = client.post("/memories/batch", json={"layer": "working", "items": []}, headers=writer_key.headers)
    assert empty.status_code == 422 and "items" in empty.json()["error"]
    bad = client.post(
        "/memories/batch",
        json={"layer": "working", "items": [{"content": f"{marker} fine"}, {"content": ""}]},
        headers=writer_key.headers,
    )
    assert bad.status_code == 422 and "items.1.content" in bad.json()["error"], bad.text
    found = client.get(
        "/memories/search", params={"layer": "working", "q": marker}, headers=reader_key.headers
    )
    assert found.status_code == 200, found.text
    assert found.json()["results"] == []  # the good item before the bad one was not stored either


def test_an_empty_or_out_of_range_window_finds_nothing(
    client: TestClient, writer_key: Persona, reader_key: Persona
) -> None:
    store(client, writer_key, "working", "a note inside every window")
    for since, until in (
        ("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"),  # reversed
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),  # empty
        ("9667-04-08T10:54:45Z", None),  # after every storable time
    ):
        params = {"layer": "working", "q": "note", "since": since, **({"until": until} if until else {})}
        found = client.get("/memories/search", params=params, headers=reader_key.headers)
        assert found.status_code == 200 and found.json() == {"results": []}, (params, found.text)
    everything = client.get(
        "/memories/search",
        params={
            "layer": "working",
            "q": "note",
            "since": "0001-01-01T00:00:00Z",
            "until": "9999-12-31T00:00:00Z",
        },
        headers=reader_key.headers,
    )
    assert len(everything.json().get("results", [])) == 1, everything.text


def test_a_query_the_parser_cannot_read_is_searched_leniently_not_refused(
    client: TestClient, writer_key: Persona, reader_key: Persona
) -> None:
    # The schema cannot state tantivy's grammar, so any text it allows is searched (the contract).
    marker = "lenientmarker"
    stored = client.post(
        "/memories", json={"layer": "working", "content": marker}, headers=writer_key.headers
    )
    assert stored.status_code == 201, stored.text
    for q in (f"{marker} AND (", "'unclosed", f'"{marker}'):
        found = client.get(
            "/memories/search", params={"layer": "working", "q": q}, headers=reader_key.headers
        )
        assert found.status_code == 200, found.text
    found = client.get(
        "/memories/search", params={"layer": "working", "q": f"{marker} AND ("}, headers=reader_key.headers
    )
    assert stored.json()["id"] in [r["id"] for r in found.json()["results"]]
