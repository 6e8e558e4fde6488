"""``jamey serve``: run the HTTP service under uvicorn (or granian), in one process or several workers.

``--server granian`` (or JAMEY_SERVER) serves under granian instead: see ``serve_granian``.

One worker (the default) serves from this process. With ``--workers N`` (or JAMEY_WORKERS)
above 1, uvicorn's supervisor runs N worker processes on one socket, each a full service on the
same data dir and database (``jamey_engine.service.asgi:app_from_env``); it replaces a worker
that dies (logging "Child process [pid] died") and stops them all on Ctrl-C or SIGTERM.

With JAMEY_FLUSHER=process (``auto``, the default, means process here) it also runs
``jamey flusher`` as a child and restarts it when it dies, so the serving processes only
append, answer and search (memory/flusher.py); the child stops when ``jamey serve`` does.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import click

from jamey_engine import ports
from jamey_engine.cli.common import get_engine
from jamey_engine.config import Settings
from jamey_engine.errors import ConfigError, InvalidInput, Unavailable
from jamey_engine.fsutil import process_alive

log = logging.getLogger(__name__)

# A worker that has not answered the supervisor's ping in this long is killed and replaced. It
# must cover a worker's start (imports and app build take several seconds on a loaded 2-core
# machine; uvicorn's default of 5 s killed every worker there before it could answer).
WORKER_HEALTHCHECK_SECONDS = 60
FLAG_VARIABLES = {
    "JAMEY_HOST": "--host",
    "JAMEY_PORT": "--port",
    "JAMEY_WORKERS": "--workers",
    "JAMEY_SERVER": "--server",
}
# A granian worker that does not stop within this long after SIGTERM is killed (uvicorn's
# timeout_graceful_shutdown, below, is the same bound).
GRACEFUL_SHUTDOWN_SECONDS = 10


def uvicorn_options() -> dict[str, Any]:
    """How ``jamey serve`` runs uvicorn (bench/serve_main.py serves the benchmarks the same way)."""
    from jamey_engine.service.http_protocol import ServiceProtocol

    return {
        "http": ServiceProtocol,  # hot requests answered whole, one socket write each (service/http_protocol.py)
        "log_config": None,  # keep the CLI's logging setup
        "access_log": False,  # our access log names the key, never its secret
        "server_header": False,
        "proxy_headers": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }


def check_workers(settings: Settings) -> None:
    """Refuse several workers with per-process rate-limit counters (InvalidInput, one line)."""
    if settings.workers > 1 and settings.rate_limit_storage.startswith("memory"):
        raise InvalidInput(
            f"{settings.workers} workers need shared rate-limit counters: set "
            "JAMEY_RATE_LIMIT_STORAGE=redis://host:6379/0 (with memory:// each worker would "
            "count alone, so every limit would be several times too loose)"
        )


def fresh_metrics_dir(data_dir: Path) -> Path:
    """An empty per-run directory for the workers' shared metrics, under the data dir.

    Named for this process; directories left by runs whose supervisor is gone are removed.
    """
    run = data_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    for old in run.glob("metrics-*"):
        pid = old.name.removeprefix("metrics-")
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = run / f"metrics-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


@click.command("serve")
@click.option("--host", metavar="ADDR", help="Address to bind [env: JAMEY_HOST; default 127.0.0.1]")
@click.option("--port", metavar="PORT", help=f"Port to listen on [env: JAMEY_PORT; default {ports.SERVICE}]")
@click.option(
    "--workers",
    metavar="N",
    help="Worker processes; more than 1 needs redis:// rate-limit storage [env: JAMEY_WORKERS; default 1]",
)
@click.option(
    "--server",
    metavar="NAME",
    help="HTTP server: uvicorn or granian [env: JAMEY_SERVER; default uvicorn]",
)
def group(host: str | None, port: str | None, workers: str | None, server: str | None) -> None:
    """Serve the Jamey HTTP API (memories, keys, /health, /metrics) until interrupted."""
    import uvicorn

    from jamey_engine.engine import Engine
    from jamey_engine.service import create_app

    engine = get_engine()
    if host is not None or port is not None or workers is not None or server is not None:
        # Parse the flags exactly as the variables they override (same validation, same errors).
        raw = {
            "JAMEY_HOST": host or engine.settings.host,
            "JAMEY_PORT": port or str(engine.settings.port),
            "JAMEY_WORKERS": workers or str(engine.settings.workers),
            "JAMEY_SERVER": server or engine.settings.server,
        }
        try:
            flags = Settings.from_env(raw)
        except ConfigError as err:
            flag = FLAG_VARIABLES.get(err.variable, "--host")
            raise InvalidInput(f"{flag} {err.value!r} is invalid: {err.message.split(': ', 1)[-1]}") from None
        engine.settings = engine.settings.with_overrides(
            host=flags.host, port=flags.port, workers=flags.workers, server=flags.server
        )
    settings = engine.settings
    assert isinstance(engine, Engine)
    check_data_dir(settings)
    check_workers(settings)
    supervise_flusher(engine)
    settings = engine.settings
    if settings.server == "granian":
        serve_granian(settings)
        return
    if settings.workers == 1:
        uvicorn.Server(
            uvicorn.Config(
                create_app(engine, schedules=True),
                host=settings.host,
                port=settings.port,
                **uvicorn_options(),
            )
        ).run()
        return
    metrics_dir = worker_environment(settings)
    log.info("serving with %d workers on %s:%d", settings.workers, settings.host, settings.port)
    try:
        uvicorn.run(
            "jamey_engine.service.asgi:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **uvicorn_options(),
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def worker_environment(settings: Settings) -> Path:
    """Put the effective settings (flags included) and a fresh shared-metrics directory into the
    environment the worker processes inherit; returns that directory (removed at the end)."""
    os.environ.update(
        {
            "JAMEY_DATA_DIR": str(settings.data_dir),
            "JAMEY_DATABASE_URL": settings.database_url,
            "JAMEY_BACKUP_DIR": str(settings.backup_dir),
            "JAMEY_HOST": settings.host,
            "JAMEY_PORT": str(settings.port),
            "JAMEY_WORKERS": str(settings.workers),
            "JAMEY_SERVER": settings.server,
        }
    )
    metrics_dir = fresh_metrics_dir(settings.data_dir)
    # Before any worker imports prometheus_client, so their counters go to shared files.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    return metrics_dir


def serve_granian(settings: Settings) -> None:
    """Serve under granian (``JAMEY_SERVER=granian``): its Rust HTTP layer, ASGI interface.

    granian runs every worker in a process of its own, one worker included, so each builds its
    service from the environment (``app_from_env``) as uvicorn's workers do, and the metrics
    always go through the shared directory. It respawns a worker that dies, and on SIGTERM or
    Ctrl-C stops the workers, killing one that takes over ``GRACEFUL_SHUTDOWN_SECONDS``.
    """
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    metrics_dir = worker_environment(settings)
    log.info(
        "serving under granian with %d worker(s) on %s:%d", settings.workers, settings.host, settings.port
    )
    level = settings.log_level.lower()
    try:
        Server(
            "jamey_engine.service.asgi:app_from_env",
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            workers=settings.workers,
            loop=Loops.uvloop,
            factory=True,
            log_access=False,  # our access log names the key, never its secret
            log_level=LogLevels(level if level in LogLevels._value2member_map_ else "warning"),
            respawn_failed_workers=True,
            workers_kill_timeout=GRACEFUL_SHUTDOWN_SECONDS,
        ).serve()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def check_data_dir(settings: Settings) -> None:
    """Refuse to serve on a data dir the service cannot write (a file in its place, a read-only
    mount): exiting lets a supervisor (``jamey stack``, systemd) see the failure and back off,
    where a service up on an unusable data dir would only fail request by request. Raises
    Unavailable naming the directory."""
    import tempfile

    for directory in (settings.data_dir, settings.memory_dir):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".jamey-write-check-"):
                pass
        except OSError as err:
            raise Unavailable(f"data dir {directory} cannot be used: {err.strerror or err}") from None


# A flusher that dies is restarted after this long, doubling to the cap while it keeps dying.
FLUSHER_RESTART_SECONDS = 0.5
FLUSHER_RESTART_MAX_SECONDS = 10.0
FLUSHER_STOP_SECONDS = 30.0


class FlusherSupervisor:
    """Runs ``jamey flusher`` as a child of this process and restarts it when it dies.

    A flusher that exits with status 0 was asked to stop (SIGTERM, as systemd sends to the
    whole unit): it is not restarted. Any other end (a crash, SIGKILL, the OOM killer) is
    logged and followed by a restart with backoff. ``pid`` is the running child's.
    """

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.pid: int | None = None
        self.restarts = 0
        self._child: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jamey-flusher-supervisor", daemon=True)

    def start(self) -> None:
        """Start the flusher and the thread that watches it."""
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # The flusher's own module, not the CLI: it starts in a tenth of the CPU time.
        command = [sys.executable, "-m", "jamey_engine.memory.flusher", "--parent", str(os.getpid())]
        return subprocess.Popen(command, env=self.environ, stdin=subprocess.DEVNULL)

    def _run(self) -> None:
        delay = FLUSHER_RESTART_SECONDS
        while not self._stopping.is_set():
            child = self._child = self._spawn()
            self.pid = child.pid
            code = child.wait()
            if self._stopping.is_set() or code == 0:
                return
            log.warning(
                "the write-ahead log flusher (pid %d) ended with status %d; restarting it", child.pid, code
            )
            self.restarts += 1
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, FLUSHER_RESTART_MAX_SECONDS)

    def stop(self) -> None:
        """Stop the flusher (SIGTERM: it flushes once more) and stop restarting it."""
        self._stopping.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(FLUSHER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._thread.join(timeout=5)


def supervise_flusher(engine: Any) -> FlusherSupervisor | None:
    """Resolve JAMEY_FLUSHER for serving (``auto`` becomes ``process``: ``engine.settings`` and
    the environment, for uvicorn's workers, say so) and, with ``process``, start the supervised
    ``jamey flusher`` child, stopped at exit. Returns its supervisor (None when inline)."""
    settings: Settings = engine.settings
    if not settings.wal or settings.flusher == "inline":
        return None
    settings = engine.settings = settings.with_overrides(flusher="process")
    os.environ["JAMEY_FLUSHER"] = "process"
    from jamey_engine.config import without_secrets

    # The flusher reads the data dir only: no key pepper, no database URL (it may hold a password).
    environ = without_secrets({**os.environ, **settings.to_environ()})
    environ.pop("JAMEY_DATABASE_URL", None)
    supervisor = FlusherSupervisor(environ)
    supervisor.start()
    atexit.register(supervisor.stop)
    return supervisor
