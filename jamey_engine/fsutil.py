"""Filesystem and process helpers shared by the engine's modules: fsyncs, durable writes,
advisory-lock probes, disk-full detection, and whether a recorded process still runs."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path

# Errors that mean "the filesystem has no room": disk full, or over a quota.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def is_no_space(err: BaseException) -> bool:
    """True when ``err`` (or an error it wraps) is a disk-full or quota error."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_SPACE:
            return True
        current = current.__cause__ or current.__context__
    return False


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a directory's entries (a create or rename), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, temp: Path, mode: int = 0o666) -> None:
    """Write ``data`` to ``temp``, fsync it, rename it over ``path`` and fsync the directory.

    Readers see the old file or the new one, never a half-written one. The file is created
    with ``mode`` (less the umask; 0o600 keeps a secret owner-only whatever the umask). On any
    error the temporary is removed and the error re-raised.
    """
    try:
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def lock_new_file(path: Path) -> int:
    """Create ``path`` exclusively and hold an exclusive flock on it; return the open descriptor.

    The lock lives as long as the descriptor (and so dies with the process, even on SIGKILL),
    which is how other processes tell a live temporary from a stale one. The name appears
    already locked: the file is made nameless (``O_TMPFILE``) or under a private name, locked,
    and only then linked to ``path``, so a cleaner in another process that probes the lock
    (:func:`is_held`) never finds a fresh file unlocked and removes it, and its probe never
    takes the lock first. Raises FileExistsError when ``path`` exists, as ``O_EXCL`` would.
    """
    try:
        fd = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, 0o600)
    except (AttributeError, OSError):  # no O_TMPFILE here (not Linux, or the filesystem)
        return _lock_new_file_by_name(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else can reach it yet
        # linkat(AT_SYMLINK_FOLLOW) of the open file: EEXIST when the name is taken, as O_EXCL.
        os.link(f"/proc/self/fd/{fd}", path)
    except FileExistsError:
        os.close(fd)
        raise
    except OSError:  # no /proc to link through: a private name instead
        os.close(fd)
        return _lock_new_file_by_name(path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lock_new_file_by_name(path: Path) -> int:
    # The private name ends in ".new", which no cleaner matches; it lives for microseconds.
    temp = path.with_name(f"{path.name}.{os.getpid()}-{os.urandom(4).hex()}.new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.link(temp, path)  # FileExistsError when the name is taken
    except BaseException:
        os.close(fd)
        raise
    finally:
        temp.unlink(missing_ok=True)
    return fd


def try_lease(path: Path, mode: int = 0o644) -> int | None:
    """Take the lease ``path`` (an exclusive flock on it, never blocking) and write this process's
    pid into it, for people asking who holds it; the open descriptor holds the lease until it is
    closed (or the process dies), None when another process holds it. Raises OSError when the
    file cannot be opened."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def is_held(path: Path) -> bool:
    """True when some live process holds a flock (shared or exclusive) on ``path``; False if
    unlocked or missing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's lock, if it got one
    return False


def remove_tree(path: Path) -> None:
    """Remove a file or directory tree if it exists; never raises for a missing path."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 onwards), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def process_identity(pid: int | None) -> str | None:
    """What tells process ``pid`` from any later process given the same pid: this boot's id and
    the process's start time (clock ticks after boot, /proc/PID/stat field 22), as
    ``"<boot id>/<start>"``. None when there is no such process (or no /proc to read)."""
    if pid is None or pid <= 0:
        return None
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "unknown-boot"
    return f"{boot}/{fields[19]}"


def process_alive(pid: int | None, identity: str | None = None) -> bool:
    """True when a process ``pid`` exists on this host and is not a zombie (a zombie has finished),
    and, when ``identity`` (from :func:`process_identity`) is given, is that very process: a pid
    reused by an unrelated process, after the first ended or the host rebooted, is not alive."""
    if pid is None or pid <= 0:
        return False
    if identity is not None and process_identity(pid) != identity:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    return fields is None or fields[:1] != ["Z"]
