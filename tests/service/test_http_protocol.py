"""``jamey serve``'s HTTP protocol (service/http_protocol.py) under a real uvicorn, over real
sockets: a small answer leaves in one socket write, and nothing is held back, reordered or lost
(streamed bodies, large bodies, keep-alive, Connection: close, HEAD)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar

import pytest
import uvicorn
from helpers import listening_socket, wait_for_port
from service_support import BIG_LIMIT, service_settings

from jamey_engine.cli.serve import uvicorn_options
from jamey_engine.engine import Engine
from jamey_engine.service import create_app
from jamey_engine.service.http_protocol import DIRECT_BYTES, CoalescingProtocol, ServiceProtocol

LARGE = bytes(range(256)) * (3 * DIRECT_BYTES // 256 + 7)  # over the direct-write size, not a multiple of it
MANY = 2_000  # parts of 100 bytes: 200 kB in all, three times the direct-write size


class CountingTransport:
    """The socket's transport, counting the writes that reach it (what the kernel is asked to send)."""

    def __init__(self, transport: Any, writes: list[int]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(len(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


written: list[int] = []  # the sizes of the writes that reached the socket's transport
gates: list[concurrent.futures.Future[None]] = []  # what /stream waits on after each part


class CountingProtocol(CoalescingProtocol):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(CountingTransport(transport, written))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/stream":  # three parts with a pause between them: each must leave before the pause
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.wrap_future(gates.pop(0))
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/many":  # many small parts sent without a pause (the loop never gets control)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(MANY):
            await send({"type": "http.response.body", "body": b"%05d" % n * 20, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = LARGE if path == "/large" else b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if path == "/close":
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    options = {**uvicorn_options(), "http": CountingProtocol}
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **options))
    sock = listening_socket()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for_port(sock.getsockname()[1])
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)


def _read_answer(stream: BinaryIO) -> tuple[bytes, bytes]:
    """One HTTP/1.1 answer with a Content-Length from a connection's ``makefile("rb")``: (head,
    body). Reads no further, so pipelined answers are read one by one."""
    lines = []
    while (line := stream.readline()) not in (b"\r\n", b""):
        lines.append(line)
    assert line, f"connection closed after {b''.join(lines)!r}"
    head = b"".join(lines).rstrip(b"\r\n")
    length = next(int(h.split(b":")[1]) for h in lines if h.lower().startswith(b"content-length:"))
    body = stream.read(length)
    assert len(body) == length, "connection closed inside the body"
    return head, body


def test_a_small_answer_leaves_in_one_write_and_keep_alive_answers_in_order(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        stream = conn.makefile("rb")
        for path in ("/a", "/large", "/b"):
            written.clear()
            conn.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            head, body = _read_answer(stream)
            assert head.startswith(b"HTTP/1.1 200 OK")
            if path == "/large":
                assert body == LARGE, "a large body arrives whole and in order"
                assert sum(written) == len(head) + 4 + len(LARGE)
            else:
                assert body == b'{"ok":true}'
                answer = len(head) + 4 + len(body)
                assert written == [answer], "head and body in one write"


def test_a_streamed_answer_leaves_each_part_before_the_app_pauses(port: int) -> None:
    gates[:] = [concurrent.futures.Future() for _ in range(3)]
    opened = list(gates)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        for gate, part in zip(opened, (b"one,", b"two,", b"three"), strict=True):
            # The app now waits on ``gate``: what it sent so far must already be here.
            while part not in received:
                chunk = conn.recv(65536)
                assert chunk, received
                received += chunk
            gate.set_result(None)
        while not received.endswith(b"0\r\n\r\n"):
            received += conn.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"


def test_many_small_writes_in_one_step_are_sent_as_they_reach_the_bound_in_order(port: int) -> None:
    written.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /many HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        while not received.endswith(b"\r\n0\r\n\r\n"):
            chunk = conn.recv(65536)
            assert chunk, "connection closed inside the body"
            received += chunk
    body = received.split(b"\r\n\r\n", 1)[1]
    parts = [line for n, line in enumerate(body.split(b"\r\n")) if n % 2 == 1 and line]
    assert parts == [b"%05d" % n * 20 for n in range(MANY)], "every part, in order"
    assert len(written) >= 3 and max(written) < DIRECT_BYTES + 110, "nothing gathered past the bound"


def test_connection_close_and_head_answers_are_delivered_whole(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /close HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        while chunk := conn.recv(65536):  # the server closes after the answer: read to the end
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK") and received.endswith(b'\r\n\r\n{"ok":true}')
    assert b"connection: close" in received.lower()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        written.clear()
        conn.sendall(b"HEAD /a HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            received += conn.recv(65536)
        assert received.startswith(b"HTTP/1.1 200 OK") and received.endswith(b"\r\n\r\n"), received
        assert len(written) == 1, "a HEAD answer has no body write to join, and still leaves"


# --- the service's hot requests answered whole (ServiceProtocol) --------------------------------


class Spy(ServiceProtocol):
    """``jamey serve``'s protocol, noting which requests it answered whole. A connection made
    while ``whole`` is False runs every request as uvicorn's ASGI cycle (the comparison)."""

    whole = True
    taken: ClassVar[list[str]] = []

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if not Spy.whole:
            self.lane = None

    async def _answer_whole(self, cycle: Any, lane: Any) -> None:
        Spy.taken.append(f"{cycle.scope['method']} {cycle.scope['path']}")
        await super()._answer_whole(cycle, lane)


@dataclass
class Service:
    port: int
    engine: Engine
    keys: dict[str, str]

    def exchange(self, request: bytes, *, whole: bool = True, answers: int = 1) -> list[Answer]:
        """Send ``request`` (raw bytes, possibly several requests) on a new connection and read
        ``answers`` answers."""
        Spy.whole = whole
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
                conn.sendall(request)
                stream = conn.makefile("rb")
                return [Answer.parse(*_read_answer(stream)) for _ in range(answers)]
        finally:
            Spy.whole = True


@dataclass
class Answer:
    status: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @classmethod
    def parse(cls, head: bytes, body: bytes) -> Answer:
        status, *lines = head.split(b"\r\n")
        headers = [
            (name.lower(), value.strip()) for name, _, value in (line.partition(b":") for line in lines)
        ]
        return cls(status, headers, body)

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)

    def shape(self) -> tuple[bytes, list[bytes]]:
        """Status line and header names in order (values change with the clock and the budget)."""
        return self.status, [name for name, _ in self.headers]


def keyed(method: str, target: str, key: str | None, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "host: jamey"]
    if key:
        lines.append(f"x-api-key: {key}")
    if body:
        headers.setdefault("content_type", "application/json")
        headers["content_length"] = str(len(body))
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def store_body(content: str, **extra: Any) -> bytes:
    return json.dumps({"layer": "working", "content": content, **extra}).encode()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("whole")
    engine = Engine(service_settings(data_dir))
    engine.memory.store_batch("working", [{"content": f"answered whole {n}"} for n in range(5)])
    engine.memory.flush()
    keys = {
        "writer": engine.keys.create(
            "writer", scopes=("memory:read", "memory:write"), rate_limit=BIG_LIMIT
        ).key,
        "reader": engine.keys.create("reader", scopes=("memory:read",), rate_limit=BIG_LIMIT).key,
        "writer-only": engine.keys.create("writer-only", scopes=("memory:write",), rate_limit=BIG_LIMIT).key,
        # One request a minute: each side's first store passes, its second is over the limit.
        "scarce-whole": engine.keys.create(
            "scarce-whole", scopes=("memory:write",), rate_limit="1/minute"
        ).key,
        "scarce-cycle": engine.keys.create(
            "scarce-cycle", scopes=("memory:write",), rate_limit="1/minute"
        ).key,
    }
    options = {**uvicorn_options(), "http": Spy}
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning", **options))
    sock = listening_socket()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for_port(sock.getsockname()[1])
    try:
        yield Service(sock.getsockname()[1], engine, keys)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        engine.close()


def test_jamey_serve_serves_with_the_protocol_that_answers_whole() -> None:
    assert uvicorn_options()["http"] is ServiceProtocol


def test_a_store_answered_whole_is_the_asgi_cycles_answer_in_one_write(service: Service) -> None:
    Spy.taken.clear()
    request = keyed("POST", "/memories", service.keys["writer"], store_body("a whole store"))
    whole, cycle = service.exchange(request)[0], service.exchange(request, whole=False)[0]
    assert Spy.taken == ["POST /memories"], "only the first connection's store was answered whole"
    assert whole.status == b"HTTP/1.1 201 Created"
    assert whole.shape() == cycle.shape(), "the same headers, in the same order"
    assert [name for name, _ in whole.headers] == [
        b"date", b"content-length", b"content-type", b"x-content-type-options", b"x-frame-options",
        b"referrer-policy", b"ratelimit-limit", b"ratelimit-remaining", b"ratelimit-reset",
    ]  # fmt: skip
    assert whole.header(b"content-type") == b"application/json"
    assert whole.header(b"ratelimit-limit") == cycle.header(b"ratelimit-limit") == b"100000"
    stored = json.loads(whole.body)
    assert list(stored) == list(json.loads(cycle.body)) == ["id"]
    # Durable when answered: the memory is there, whole.
    assert service.engine.memory.get("working", stored["id"]).content == "a whole store"


def test_a_search_answered_whole_is_the_asgi_cycles_answer(service: Service) -> None:
    Spy.taken.clear()
    request = keyed("GET", "/memories/search?layer=working&q=answered&limit=3", service.keys["reader"])
    whole, cycle = service.exchange(request)[0], service.exchange(request, whole=False)[0]
    assert Spy.taken == ["GET /memories/search"]
    assert whole.status == b"HTTP/1.1 200 OK" and whole.shape() == cycle.shape()
    assert whole.body == cycle.body and len(json.loads(whole.body)["results"]) == 3


@pytest.mark.parametrize(
    ("key", "target", "body", "status"),
    [
        (None, "/memories", store_body("no key"), b"401"),
        ("reader", "/memories", store_body("a reader's store"), b"403"),
        ("writer-only", "/memories/search?layer=working&q=answered", b"", b"403"),
    ],
)
def test_refusals_answered_whole_are_the_asgi_cycles(
    service: Service, key: str | None, target: str, body: bytes, status: bytes
) -> None:
    Spy.taken.clear()
    request = keyed("POST" if body else "GET", target, service.keys[key] if key else None, body)
    whole, cycle = service.exchange(request)[0], service.exchange(request, whole=False)[0]
    assert len(Spy.taken) == 1
    assert whole.status.split(b" ")[1] == status, whole
    assert whole.shape() == cycle.shape() and whole.body == cycle.body
    if key is None:
        assert whole.header(b"www-authenticate") == b'Bearer realm="jamey"'


def test_a_store_over_its_keys_limit_is_refused_whole_as_by_the_asgi_cycle(service: Service) -> None:
    answers = {}
    for whole in (True, False):
        key = service.keys["scarce-whole" if whole else "scarce-cycle"]
        request = keyed("POST", "/memories", key, store_body("one a minute"))
        first, second = service.exchange(request + request, whole=whole, answers=2)
        assert first.status == b"HTTP/1.1 201 Created"
        answers[whole] = second
    assert answers[True].status == b"HTTP/1.1 429 Too Many Requests"
    assert answers[True].shape() == answers[False].shape() and answers[True].body == answers[False].body
    assert answers[True].header(b"ratelimit-remaining") == b"0" and answers[True].header(b"retry-after")


def test_stores_the_fast_path_leaves_to_the_route_are_answered_by_it(service: Service) -> None:
    """Taken whole, then handed to the app with its body: a timestamp, another content type."""
    Spy.taken.clear()
    writer = service.keys["writer"]
    past = "2001-02-03T04:05:06Z"  # any valid time: the route stores it as given
    dated = service.exchange(keyed("POST", "/memories", writer, store_body("dated", timestamp=past)))[0]
    assert dated.status == b"HTTP/1.1 201 Created"
    stored = service.engine.memory.get("working", json.loads(dated.body)["id"])
    assert stored.content == "dated" and stored.timestamp.isoformat().startswith("2001-02-03T04:05:06")
    form = keyed("POST", "/memories", writer, b"layer=working", content_type="text/plain")
    whole, cycle = service.exchange(form)[0], service.exchange(form, whole=False)[0]
    assert whole.status == cycle.status and whole.status.split(b" ")[1] in (b"400", b"415", b"422")
    assert whole.body == cycle.body
    windowed = keyed("GET", "/memories/search?layer=working&q=answered&since=2000-01-01T00:00:00Z", writer)
    assert json.loads(service.exchange(windowed)[0].body)["results"]
    assert Spy.taken == ["POST /memories", "POST /memories", "GET /memories/search"]


def test_a_body_sent_after_its_head_pipelined_requests_and_connection_close(service: Service) -> None:
    writer = service.keys["writer"]
    request = keyed("POST", "/memories", writer, store_body("sent in two parts"))
    head, body = request.split(b"\r\n\r\n", 1)
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as conn:
        conn.sendall(head + b"\r\n\r\n")
        time.sleep(0.2)  # the answer waits for the body
        conn.sendall(body)
        assert Answer.parse(*_read_answer(conn.makefile("rb"))).status == b"HTTP/1.1 201 Created"
    # Three requests in one write: answered in order, a store whole between two ASGI cycles.
    pipelined = (
        keyed("GET", "/health", None)
        + keyed("POST", "/memories", writer, store_body("pipelined"))
        + keyed("GET", "/health", None)
    )
    answers = service.exchange(pipelined, answers=3)
    assert [answer.status.split(b" ")[1] for answer in answers] == [b"200", b"201", b"200"]
    assert json.loads(answers[1].body).keys() == {"id"}
    # Connection: close: the answer says so and the server closes the connection after it.
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as conn:
        conn.sendall(keyed("POST", "/memories", writer, store_body("then close"), connection="close"))
        answer = Answer.parse(*_read_answer(conn.makefile("rb")))
        assert answer.status == b"HTTP/1.1 201 Created" and answer.header(b"connection") == b"close"
        assert conn.recv(1) == b"", "closed after the answer"


def test_answers_given_whole_are_counted_timed_and_logged(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    def served(status: str) -> float:
        metrics = service.exchange(keyed("GET", "/metrics", None))[0].body.decode()
        line = f'http_requests_total{{method="POST",route="/memories",status="{status}"}} '
        return sum(float(row.split(" ")[-1]) for row in metrics.splitlines() if row.startswith(line))

    before = served("201")
    with caplog.at_level("INFO", logger="jamey_engine.service.access"):
        service.exchange(keyed("POST", "/memories", service.keys["writer"], store_body("counted")))
    assert served("201") == before + 1
    assert any(
        '"POST /memories" 201' in r.getMessage() and "key=writer" in r.getMessage() for r in caplog.records
    )
