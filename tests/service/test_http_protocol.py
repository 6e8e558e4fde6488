"""``jamey serve``'s HTTP protocol (service/http_protocol.py) under a real uvicorn, over real
sockets: a small answer leaves in one socket write, and nothing is held back, reordered or lost
(streamed bodies, large bodies, keep-alive, Connection: close, HEAD)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from helpers import listening_socket, wait_for_port

from jamey_engine.cli.serve import uvicorn_options
from jamey_engine.service.http_protocol import DIRECT_BYTES, CoalescingProtocol

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


def _read_answer(conn: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP/1.1 answer with a Content-Length: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return head, body


def test_a_small_answer_leaves_in_one_write_and_keep_alive_answers_in_order(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for path in ("/a", "/large", "/b"):
            written.clear()
            conn.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            head, body = _read_answer(conn)
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
