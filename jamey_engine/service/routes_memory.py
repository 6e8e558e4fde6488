"""Memory routes: store, batch store, search, get, delete and sizes.

Endpoints are ``async`` and hand each store call to a worker thread (``run_in_threadpool``), so
long tantivy work never stalls the event loop, with one thread hop per request (a plain ``def``
endpoint costs two: FastAPI also serializes its answer in a worker thread). Two exceptions, both
cheaper than the hop: a single store is queued to the layer's group-commit writer from the loop
and its commit awaited, and a small search on a warm layer runs on the loop. Layer and content rules live in the memory store; its InvalidInput
messages (unknown layer listing the five, empty or oversized content, bad query) reach the
client unchanged through the one error handler.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from jamey_engine.durations import as_utc
from jamey_engine.errors import InvalidInput
from jamey_engine.memory.layers import MAX_QUERY_CHARS, Layer, Order
from jamey_engine.memory.model import DEFAULT_LIMIT, MAX_LIMIT
from jamey_engine.service.auth import KeyedRoute, engine_of, needs
from jamey_engine.service.contract import NOT_BLANK_PATTERN, UUID_PATTERN, Timestamp
from jamey_engine.service.errors import ERROR_RESPONSES
from jamey_engine.service.wakeup import completion_of

if TYPE_CHECKING:
    from jamey_engine.memory import MemoryStore

MAX_BATCH_ITEMS = 10_000
# Searches for at most this many results on a warm layer run on the event loop. Loading the
# hits' documents is most of a small search (~3 µs a hit, ~0.2 ms for ten in all), less than a
# worker-thread hop costs in one Python process; a request for up to 1,000 results (or a layer
# that must first replay its log or open its index) goes to a worker thread instead, so one
# large request does not hold up the others.
INLINE_SEARCH_LIMIT = 50
MemoryId = Annotated[
    str,
    Path(pattern=UUID_PATTERN, json_schema_extra={"format": "uuid"}, description="The memory's id (a UUID)."),
]

router = APIRouter(prefix="/memories", tags=["memories"], responses=ERROR_RESPONSES, route_class=KeyedRoute)


_CONTENT = "The memory's text: at least one character that is not white space, at most JAMEY_MAX_CONTENT_BYTES UTF-8 bytes."
_TIMESTAMP = "When it happened (ISO 8601, a year from 1970 to 2261); default now."


class StoreBody(BaseModel):
    layer: Layer = Field(description="The memory layer.")
    content: str = Field(min_length=1, pattern=NOT_BLANK_PATTERN, description=_CONTENT)
    timestamp: Timestamp | None = Field(default=None, description=_TIMESTAMP)


class BatchItem(BaseModel):
    content: str = Field(min_length=1, pattern=NOT_BLANK_PATTERN, description=_CONTENT)
    timestamp: Timestamp | None = Field(default=None, description=_TIMESTAMP)


class BatchBody(BaseModel):
    layer: Layer
    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class StoredId(BaseModel):
    id: str


class StoredIds(BaseModel):
    ids: list[str]


class MemoryOut(BaseModel):
    id: str
    layer: str
    content: str
    timestamp: datetime
    score: float | None = None


class SearchResults(BaseModel):
    results: list[MemoryOut]


class LayerSizeOut(BaseModel):
    bytes: int
    documents: int
    segments: int


class SizesOut(BaseModel):
    layers: dict[str, LayerSizeOut]
    total_bytes: int
    total_documents: int


def _json(payload: Any, status: int = 200) -> Response:
    """The answer as JSON (orjson: Memory dataclasses and datetimes natively, their fields in
    order: id, layer, content, timestamp, score), skipping FastAPI's re-validation of the
    response model (the shapes are built here from the store's dataclasses; the models above
    document them)."""
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _check_length(request: Request, contents: list[str]) -> None:
    """Refuse content longer than the schema's ``maxLength`` (JAMEY_MAX_CONTENT_BYTES characters)
    with 400, as the schema says; content within it but over the byte limit stays a 413."""
    limit = engine_of(request).settings.max_content_bytes
    for number, content in enumerate(contents):
        if len(content) > limit:
            where = "content" if len(contents) == 1 else f"items.{number}.content"
            raise InvalidInput(
                f"{where} is {len(content)} characters; at most {limit} (JAMEY_MAX_CONTENT_BYTES) are allowed"
            )


async def store_one(memory: MemoryStore, layer: str, content: str, timestamp: datetime | None) -> Response:
    """The answer to a valid single store (this route's and the fast path's, service/fastpath.py)."""
    # Queued from the loop and awaited, not run in a worker thread: 32 concurrent stores would
    # otherwise park 32 threads on one commit and fight over the GIL when it wakes them.
    stored, committed = memory.store_nowait(layer, content, as_utc(timestamp), asyncio.get_running_loop())
    await (committed if isinstance(committed, asyncio.Future) else completion_of(committed))
    return _json({"id": stored.id}, 201)


async def search_results(
    memory: MemoryStore,
    layer: str,
    q: str,
    limit: int,
    order: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Response:
    """The answer to a valid search (this route's and the fast path's, service/fastpath.py)."""
    search = partial(
        memory.search,
        layer,
        q,
        limit=limit,
        order=order,
        since=as_utc(since),
        until=as_utc(until),
        lenient=True,
    )
    # A small search on a warm layer runs on the event loop: it costs less than the hop to a
    # worker thread would (see INLINE_SEARCH_LIMIT). Anything that may take longer hops.
    found = (
        search()
        if limit <= INLINE_SEARCH_LIMIT and memory.is_warm(layer)
        else await run_in_threadpool(search)
    )
    return _json({"results": found})


@router.post("", status_code=201, response_model=StoredId, openapi_extra=needs("memory:write"))
async def store_memory(body: StoreBody, request: Request) -> Response:
    """Store one memory; durable when the answer arrives."""
    _check_length(request, [body.content])
    return await store_one(engine_of(request).memory, body.layer, body.content, body.timestamp)


@router.post("/batch", status_code=201, response_model=StoredIds, openapi_extra=needs("memory:write"))
async def store_batch(body: BatchBody, request: Request) -> Response:
    """Store many memories in one layer, all or none; ids in the order given."""
    _check_length(request, [item.content for item in body.items])
    items = [{"content": item.content, "timestamp": as_utc(item.timestamp)} for item in body.items]
    ids = await run_in_threadpool(engine_of(request).memory.store_batch, body.layer, items)
    return _json({"ids": list(ids)}, 201)


@router.get("/search", response_model=SearchResults, openapi_extra=needs("memory:read"))
async def search_memories(
    request: Request,
    layer: Annotated[Layer, Query(description="The memory layer to search.")],
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            pattern=NOT_BLANK_PATTERN,
            description="tantivy query text (`*` matches all); text the query parser cannot read "
            "is searched as tantivy's lenient parser reads it, never refused.",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Most results to return.")] = DEFAULT_LIMIT,
    order: Annotated[Order, Query(description="Rank by relevance or time.")] = "score",
    since: Annotated[
        datetime | None,
        Query(description="Only memories at or after this time (an empty window finds none)."),
    ] = None,
    until: Annotated[datetime | None, Query(description="Only memories before this time.")] = None,
) -> Response:
    """Search one layer; results best first (or newest first)."""
    return await search_results(engine_of(request).memory, layer, q, limit, order, since, until)


@router.get("/sizes", response_model=SizesOut, openapi_extra=needs("memory:read"))
async def memory_sizes(request: Request) -> SizesOut:
    """Bytes, documents and segments per layer, and the totals."""
    sizes = await run_in_threadpool(engine_of(request).memory.sizes)
    return SizesOut(
        layers={
            layer: LayerSizeOut(bytes=s.bytes, documents=s.documents, segments=s.segments)
            for layer, s in sizes.layers.items()
        },
        total_bytes=sizes.total_bytes,
        total_documents=sizes.total_documents,
    )


@router.get("/{layer}/{memory_id}", response_model=MemoryOut, openapi_extra=needs("memory:read"))
async def get_memory(layer: Layer, memory_id: MemoryId, request: Request) -> Response:
    """One memory by layer and id (404 when it does not exist)."""
    return _json(await run_in_threadpool(engine_of(request).memory.get, layer, memory_id))


@router.delete("/{layer}/{memory_id}", status_code=204, openapi_extra=needs("memory:write"))
async def delete_memory(layer: Layer, memory_id: MemoryId, request: Request) -> Response:
    """Delete one memory (404 when it does not exist)."""
    await run_in_threadpool(engine_of(request).memory.delete, layer, memory_id)
    return Response(status_code=204)
