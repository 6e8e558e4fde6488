"""Private at rest: the owner-only umask and the data dir check every front door runs.

Like PostgreSQL with its data directory, Jamey keeps everything it writes readable by its
owner only (``0700`` directories, ``0600`` files) and refuses to start on a data dir that
group or others can access, unless ``JAMEY_ALLOW_SHARED_DATA_DIR=1`` says access is managed
with groups on purpose (then it warns, once per process).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

from jamey_engine.config import Settings
from jamey_engine.errors import DataDirNotPrivate

log = logging.getLogger("jamey_engine.privacy")

PRIVATE_UMASK = 0o077
# Group or others may read, write or enter.
SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO

_warned: set[Path] = set()
_warned_lock = threading.Lock()


def set_private_umask() -> None:
    """Make every file and directory this process creates from now on owner-only.

    Idempotent; also inherited by the processes it starts (Prometheus, the workbench, kernels).
    """
    os.umask(PRIVATE_UMASK)


def mode_of(path: Path) -> int:
    """The permission bits of ``path`` (not following a final symlink's target's mode: it does)."""
    return stat.S_IMODE(path.stat().st_mode)


def check_data_dir(settings: Settings) -> None:
    """Refuse a group- or world-accessible data dir; create a missing one ``0700``.

    Sets the owner-only umask first. Raises DataDirNotPrivate (one line: path, mode, the
    ``chmod`` that fixes it) unless ``settings.allow_shared_data_dir``, in which case it logs
    one warning per data dir and process. An unreadable or uncreatable data dir is left to
    the component that uses it to report.
    """
    set_private_umask()
    path = settings.data_dir
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = mode_of(path)
    except OSError:
        return
    if not mode & SHARED_BITS:
        return
    if not settings.allow_shared_data_dir:
        raise DataDirNotPrivate(path, mode)
    with _warned_lock:
        if path in _warned:
            return
        _warned.add(path)
    log.warning(
        "data directory %s has mode %04o (group or others can access it); going on because "
        "JAMEY_ALLOW_SHARED_DATA_DIR=1",
        path,
        mode,
    )
