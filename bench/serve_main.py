"""``python -m bench.serve_main SERVER TARGET PORT WORKERS``: a factory app served on 127.0.0.1
the way ``jamey serve`` serves the service (``jamey_engine.cli.serve``), under uvicorn (its
HTTP protocol, no server header, no proxy headers, no uvicorn access log) or granian (uvloop,
no access log), with the write-ahead log's flusher as a child process, so the serving
processes only append, answer and search.

``JAMEY_BENCH_HTTP=httptools`` serves uvicorn with its own httptools protocol instead, the
baseline of the one-write-per-answer protocol (``jamey_engine.service.http_protocol``);
``JAMEY_BENCH_HTTP=coalescing`` with that protocol but every request as an ASGI cycle, the
baseline of the requests answered whole (``ServiceProtocol``).
``JAMEY_FLUSHER=inline`` keeps the flush in the serving process (the library's default), the
baseline of the flusher process. The flusher is this process's child, so a CPU count over the
process tree (``bench/wrk.py``) includes its indexing.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from jamey_engine.cli.serve import supervise_flusher, uvicorn_options
from jamey_engine.config import Settings
from jamey_engine.observability.logsink import setup_logging


def serve_uvicorn(target: str, port: int, workers: int) -> None:
    import uvicorn

    options = uvicorn_options()
    if os.environ.get("JAMEY_BENCH_HTTP") == "httptools":
        options["http"] = "httptools"
    elif os.environ.get("JAMEY_BENCH_HTTP") == "coalescing":
        from jamey_engine.service.http_protocol import CoalescingProtocol

        options["http"] = CoalescingProtocol
    uvicorn.run(
        target, factory=True, host="127.0.0.1", port=port, workers=workers, log_level="warning", **options
    )


def serve_granian(target: str, port: int, workers: int) -> None:
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    Server(
        target,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        factory=True,
        log_access=False,
        log_level=LogLevels.warning,
    ).serve()


def main() -> None:
    server, target, port, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    serve = {"uvicorn": serve_uvicorn, "granian": serve_granian}[server]
    # As `jamey serve`: JAMEY_FLUSHER=auto becomes process (in the environment the factory's
    # app reads) and the flusher child starts; stopped at exit.
    settings = Settings.from_env()
    setup_logging(settings.log_level)  # as the CLI: the access log at JAMEY_LOG_LEVEL (info by default)
    supervise_flusher(SimpleNamespace(settings=settings))
    serve(target, port, workers)


if __name__ == "__main__":
    main()
