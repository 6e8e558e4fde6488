"""``jamey serve``: run the HTTP service under uvicorn (and the backup and retention schedules, when set)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import click

from jamey_engine.cli.common import get_engine
from jamey_engine.config import Settings
from jamey_engine.errors import ConfigError, InvalidInput, Unavailable

log = logging.getLogger(__name__)


@click.command("serve")
@click.option("--host", metavar="ADDR", help="Address to bind [env: JAMEY_HOST; default 127.0.0.1]")
@click.option("--port", metavar="PORT", help="Port to listen on [env: JAMEY_PORT; default 3000]")
def group(host: str | None, port: str | None) -> None:
    """Serve the Jamey HTTP API (memories, keys, /health, /metrics) until interrupted."""
    import uvicorn

    from jamey_engine.engine import Engine
    from jamey_engine.service import create_app
    from jamey_engine.service.scheduler import BackupScheduler, RetentionScheduler

    engine = get_engine()
    if host is not None or port is not None:
        # Parse the flags exactly as the variables they override (same validation, same errors).
        raw = {"JAMEY_HOST": host or engine.settings.host, "JAMEY_PORT": port or str(engine.settings.port)}
        try:
            flags = Settings.from_env(raw)
        except ConfigError as err:
            flag = "--port" if err.variable == "JAMEY_PORT" else "--host"
            raise InvalidInput(f"{flag} {err.value!r} is invalid: {err.message.split(': ', 1)[-1]}") from None
        engine.settings = engine.settings.with_overrides(host=flags.host, port=flags.port)
    settings = engine.settings
    assert isinstance(engine, Engine)
    check_data_dir(settings)
    scheduler = None
    if settings.backup_interval is not None:
        scheduler = BackupScheduler(engine, settings.backup_interval).start()
        log.info("scheduled backups every %s", settings.backup_interval)
    retention = None
    if settings.retention_interval is not None:
        retention = RetentionScheduler(engine, settings.retention_interval).start()
    app = create_app(engine)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the CLI's logging setup
        access_log=False,  # our access log names the key, never its secret
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    server = _stopping_server(config, scheduler.stop if scheduler is not None else None)
    try:
        server.run()
    finally:
        if scheduler is not None:
            scheduler.stop()
        if retention is not None:
            retention.stop()


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


def _stopping_server(config: Any, on_shutdown: Callable[[], None] | None) -> Any:
    """uvicorn's server, calling ``on_shutdown`` at the end of its shutdown.

    On SIGTERM uvicorn shuts down and then raises the signal again, which ends the process
    before any code after ``run()``; so the backup schedule is stopped here (a running backup
    and its retention finish first).
    """
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            await super().shutdown(sockets)
            if on_shutdown is not None:
                on_shutdown()

    return Server(config)
