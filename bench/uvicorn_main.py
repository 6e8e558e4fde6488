"""``python -m bench.uvicorn_main TARGET PORT WORKERS``: a uvicorn factory served the way
``jamey serve`` serves the service (``jamey_engine.cli.serve.uvicorn_options``: its HTTP
protocol, no server header, no proxy headers, no uvicorn access log), on 127.0.0.1.

``JAMEY_BENCH_HTTP=httptools`` serves with uvicorn's own httptools protocol instead, the
baseline of the one-write-per-answer protocol (``jamey_engine.service.http_protocol``).
"""

from __future__ import annotations

import os
import sys

import uvicorn

from jamey_engine.cli.serve import uvicorn_options


def main() -> None:
    target, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    options = uvicorn_options()
    if os.environ.get("JAMEY_BENCH_HTTP") == "httptools":
        options["http"] = "httptools"
    uvicorn.run(
        target, factory=True, host="127.0.0.1", port=port, workers=workers, log_level="warning", **options
    )


if __name__ == "__main__":
    main()
