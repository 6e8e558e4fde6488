"""Wiring Alertmanager to the webhook receiver: its key, its credentials file, its config.

``jamey stack`` (``make run``) calls :func:`prepare_alertmanager` before it starts Alertmanager:
- a key of scope ``alerts:write`` named ``alertmanager-webhook`` is created when the credentials
  file is missing or holds a key that no longer works (revoked, expired, another database);
- the key is written to the credentials file owner-only (0600), never logged or printed;
- the project's prometheus/alertmanager.yml is copied with every Jamey webhook pointed at the
  stack's service URL and the credentials file's absolute path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from jamey_engine.engine import Engine
from jamey_engine.errors import JameyError
from jamey_engine.fsutil import write_durably
from jamey_engine.observability.webhook import MAX_ALERTS

WEBHOOK_PATH = "/alertmanager/webhook"
KEY_NAME = "alertmanager-webhook"
CREDENTIALS_FILE = "alertmanager-webhook.credentials"
# Alertmanager sends one notification per group and group_interval (and retries): with the
# project's rules, a storm is a few dozen a minute. Enough for that, and no more, so the key
# (readable in its credentials file) cannot flood the history.
KEY_RATE_LIMIT = "120/minute"


def write_owner_only(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable and writable by the owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_durably(path, text.encode(), path.with_name(f".{path.name}.tmp"), mode=0o600)


def ensure_webhook_key(engine: Engine, credentials: Path) -> bool:
    """Make ``credentials`` hold a working ``alerts:write`` key; True when a key was created.

    A file whose key still verifies is left alone (its mode is tightened to 0600).
    """
    if credentials.is_file():
        token = credentials.read_text().strip()
        try:
            engine.keys.verify(token)
        except JameyError:
            pass
        else:
            credentials.chmod(0o600)
            return False
    created = engine.keys.create(
        KEY_NAME, scopes=("alerts:write",), rate_limit=KEY_RATE_LIMIT, actor="jamey stack"
    )
    write_owner_only(credentials, created.key + "\n")
    return True


def render_alertmanager_config(source: Path, target: Path, service_url: str, credentials: Path) -> Path:
    """Copy the Alertmanager config at ``source`` to ``target`` with every webhook that points at
    the Jamey receiver sent to ``service_url`` with ``credentials``; return ``target``."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []) or []:
            if str(hook.get("url", "")).endswith(WEBHOOK_PATH):
                hook["url"] = service_url.rstrip("/") + WEBHOOK_PATH
                auth = hook.setdefault("http_config", {}).setdefault("authorization", {})
                auth["type"] = "Bearer"
                auth["credentials_file"] = str(credentials.absolute())
                hook.setdefault("max_alerts", MAX_ALERTS)  # the receiver refuses more
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def prepare_alertmanager(engine: Engine, source: Path, run_dir: Path, service_url: str) -> tuple[Path, bool]:
    """The key, the credentials file and the rendered config for a stack whose files live in
    ``run_dir``; returns (the config path, whether a key was created)."""
    credentials = run_dir / CREDENTIALS_FILE
    created = ensure_webhook_key(engine, credentials)
    config = render_alertmanager_config(source, run_dir / "alertmanager.yml", service_url, credentials)
    return config, created
