"""Backup encryption in the standard age format (https://age-encryption.org/v1), via pyrage.

An encrypted backup is ``<id>.tar.zst.age``: the very ``.tar.zst`` stream of a plain backup,
encrypted to age recipients. age authenticates every 64 KiB chunk and the end of the stream
(ChaCha20-Poly1305 STREAM), so a flipped byte, a truncation or a swapped manifest fails
decryption: tampering is detected, not only accidents. Debian's ``age -d -i key.txt`` reads
it, and ``tar --zstd -x`` then unpacks it.

Streaming: pyrage pulls from a reader and pushes to a writer, so encryption and decryption
run in a helper thread joined to the archive code by an OS pipe. Memory stays bounded (the
pipe, one age chunk and the zstd buffers) whatever the backup's size.

Secrets (identities, the passphrase) never appear in a message, a log line or a repr.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
from pyrage import x25519

from jamey_engine.config import Settings
from jamey_engine.errors import BackupCorrupt, BackupLocked, ConfigError, InvalidInput

AGE_MAGIC = b"age-encryption.org/v1\n"
ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"
PIPE_BUFFER = 1 << 20


def is_encrypted(path: Path) -> bool:
    """True when the file at ``path`` starts like an age file (binary or armored)."""
    with open(path, "rb") as handle:
        head = handle.read(len(ARMOR_MAGIC))
    return head.startswith(AGE_MAGIC) or head.startswith(ARMOR_MAGIC)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _read_file(variable: str, path_text: str) -> str:
    path = Path(path_text).expanduser()
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise ConfigError(variable, path_text, f"cannot read the file ({reason})") from None


def parse_recipients(text: str, variable: str = "JAMEY_BACKUP_RECIPIENTS") -> tuple[Any, ...]:
    """age recipients from ``text``: keys separated by commas or spaces, or the path of a file of
    them (one a line, ``#`` comments). Accepts ``age1...`` X25519 keys and ``ssh-ed25519``/
    ``ssh-rsa`` public keys. Raises ConfigError naming the variable and the bad entry."""
    raw = text.strip()
    if not raw:
        return ()
    if raw.startswith(("age1", "ssh-")):
        entries = raw.replace(",", " ").split() if raw.startswith("age1") else [raw]
        source = ""
    else:
        entries = []
        for line in _lines(_read_file(variable, raw)):
            entries.extend(line.replace(",", " ").split() if line.startswith("age1") else [line])
        source = f" in file {raw}"
        if not entries:
            raise ConfigError(variable, text, "the file holds no age public key")
    recipients: list[Any] = []
    for entry in entries:
        try:
            if entry.startswith("ssh-"):
                recipients.append(pyrage.ssh.Recipient.from_str(entry))
            else:
                recipients.append(x25519.Recipient.from_str(entry))
        except pyrage.RecipientError as err:
            shown = entry if len(entry) < 80 else entry[:77] + "..."
            raise ConfigError(variable, text, f"{shown!r}{source} is not an age public key ({err})") from None
    return tuple(recipients)


def parse_identities(path_text: str, variable: str = "JAMEY_BACKUP_IDENTITY_FILE") -> tuple[Any, ...]:
    """The X25519 identities (``AGE-SECRET-KEY-1...`` lines) in the file at ``path_text``.

    Raises ConfigError naming the variable, the file and the line number of a bad line (never
    its content: it may be a secret)."""
    identities = []
    for number, line in enumerate(_read_file(variable, path_text).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise ConfigError(
                variable, path_text, f"line {number} is not an age identity (AGE-SECRET-KEY-1...)"
            ) from None
    if not identities:
        raise ConfigError(variable, path_text, "the file holds no age identity")
    return tuple(identities)


@dataclass(frozen=True)
class BackupKeys:
    """Who new backups are encrypted to, and what can decrypt existing ones.

    ``recipients`` are public; ``identities`` and the passphrase are secret (kept out of repr).
    """

    recipients: tuple[Any, ...] = ()
    identities: tuple[Any, ...] = field(default=(), repr=False)
    passphrase: str | None = field(default=None, repr=False)
    identity_file: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> BackupKeys:
        """Read JAMEY_BACKUP_RECIPIENTS, JAMEY_BACKUP_PASSPHRASE_FILE and JAMEY_BACKUP_IDENTITY_FILE.

        Raises ConfigError naming the variable when a file cannot be read or holds no key.
        """
        recipients = parse_recipients(settings.backup_recipients)
        passphrase = None
        if settings.backup_passphrase_file:
            text = _read_file("JAMEY_BACKUP_PASSPHRASE_FILE", settings.backup_passphrase_file)
            passphrase = text.rstrip("\r\n")
            if not passphrase:
                raise ConfigError(
                    "JAMEY_BACKUP_PASSPHRASE_FILE", settings.backup_passphrase_file, "the file is empty"
                )
        identities = parse_identities(settings.backup_identity_file) if settings.backup_identity_file else ()
        return cls(recipients, identities, passphrase, settings.backup_identity_file)

    @property
    def encrypts(self) -> bool:
        """True when new backups are encrypted (to recipients, else with the passphrase)."""
        return bool(self.recipients) or self.passphrase is not None

    @property
    def recipient_names(self) -> list[str]:
        """The recipients' public keys as text."""
        return [str(recipient) for recipient in self.recipients]


class _Pump(threading.Thread):
    """Runs one pyrage call in the background and keeps its exception for the caller."""

    def __init__(self, work: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._work = work
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as err:  # handed to the caller by join_and_raise
            self.error = err


class _Watched:
    """A file wrapper that remembers the first OSError its reads or writes raised (pyrage
    reports I/O errors as its own exception types; the caller wants the real one, ENOSPC say)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.error: OSError | None = None
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.handle.read(size)
        except OSError as err:
            self.error = self.error or err
            raise
        self.position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        try:
            count = self.handle.readinto(buffer)  # type: ignore[attr-defined]
        except OSError as err:
            self.error = self.error or err
            raise
        self.position += count or 0
        return count or 0

    def write(self, data: Any) -> int:
        try:
            count = self.handle.write(data)
        except OSError as err:
            self.error = self.error or err
            raise
        self.position += count
        return count

    def flush(self) -> None:
        self.handle.flush()


@contextmanager
def encrypting(out: BinaryIO, keys: BackupKeys) -> Iterator[BinaryIO]:
    """A writable stream whose bytes reach ``out`` age-encrypted to ``keys``' recipients.

    The age stream is complete (final chunk written) when the block exits without error. An
    OSError writing ``out`` (disk full) is re-raised as itself. Raises InvalidInput when
    ``keys`` does not encrypt.
    """
    if not keys.recipients and keys.passphrase is None:
        raise InvalidInput("no backup recipients or passphrase are set; nothing to encrypt to")
    if not keys.recipients:
        with _passphrase_encrypting(out, keys.passphrase or "") as sink:
            yield sink
        return
    read_fd, write_fd = os.pipe()
    source = open(read_fd, "rb", buffering=PIPE_BUFFER)  # noqa: SIM115
    sink = open(write_fd, "wb", buffering=PIPE_BUFFER)  # noqa: SIM115
    target = _Watched(out)

    def work() -> None:
        try:
            pyrage.encrypt_io(source, target, list(keys.recipients))
        finally:
            source.close()  # a writer still writing gets EPIPE instead of blocking forever

    pump = _Pump(work, "vault-encrypt")
    pump.start()
    try:
        yield sink
        sink.close()
    except BaseException as err:
        _close_quietly(sink)
        pump.join()
        if target.error is not None:
            raise target.error from None
        if pump.error is not None and isinstance(err, BrokenPipeError):
            raise OSError(f"age encryption failed: {pump.error}") from None
        raise
    pump.join()
    if target.error is not None:
        raise target.error
    if pump.error is not None:
        raise OSError(f"age encryption failed: {pump.error}") from None


@contextmanager
def _passphrase_encrypting(out: BinaryIO, passphrase: str) -> Iterator[BinaryIO]:
    """Passphrase (scrypt) encryption: pyrage offers it on whole byte strings only, so the
    archive is gathered in memory (never as plaintext on disk) and encrypted at the end.
    Memory is about twice the archive's size: see docs/benchmarks.md."""
    import io

    spool = io.BytesIO()
    yield spool
    out.write(pyrage.passphrase.encrypt(spool.getvalue(), passphrase))


def _close_quietly(handle: BinaryIO) -> None:
    with suppress(OSError):
        handle.close()


def _decrypt_error(err: BaseException, label: str, keys: BackupKeys) -> Exception:
    """The user-facing error for a failed decryption of ``label`` (no secret in it)."""
    text = str(err)
    if isinstance(err, pyrage.DecryptError) and "No matching keys" in text:
        return BackupLocked(
            f"{label} is encrypted, and no identity in JAMEY_BACKUP_IDENTITY_FILE "
            f"({keys.identity_file}) can decrypt it; set it to the age identity of one of its "
            "recipients. Nothing was changed"
        )
    if keys.passphrase is not None and not keys.identities:
        # pyrage reports a wrong passphrase and a damaged file alike.
        return BackupLocked(
            f"{label} cannot be decrypted with the passphrase in JAMEY_BACKUP_PASSPHRASE_FILE "
            "(a different passphrase, or a damaged archive). Nothing was changed"
        )
    return BackupCorrupt(
        f"{label} failed age authentication ({text or type(err).__name__}): it is damaged or was "
        "tampered with; nothing was unpacked",
        file="archive",
    )


def require_decryption(keys: BackupKeys, label: str) -> None:
    """Raise BackupLocked unless ``keys`` holds an identity or a passphrase to try."""
    if not keys.identities and keys.passphrase is None:
        raise BackupLocked(
            f"{label} is encrypted; set JAMEY_BACKUP_IDENTITY_FILE to the age identity file of "
            "one of its recipients (or JAMEY_BACKUP_PASSPHRASE_FILE). Nothing was changed"
        )


@contextmanager
def decrypting(path: Path, keys: BackupKeys, label: str) -> Iterator[tuple[BinaryIO, Callable[[], int]]]:
    """The plaintext of the age file at ``path`` as a readable stream, and a function giving
    how many ciphertext bytes were consumed so far (for progress).

    age releases a chunk only once it is authenticated, but a damaged chunk late in the file
    fails only when reached: callers that must not act on a damaged backup run
    ``authenticate`` first. On leaving the block the decryption's own outcome is checked:
    BackupLocked (no usable identity or passphrase), BackupCorrupt (failed authentication),
    or the OSError reading ``path``.
    """
    require_decryption(keys, label)
    if not keys.identities:
        with _passphrase_decrypting(path, keys, label) as opened:
            yield opened
        return
    read_fd, write_fd = os.pipe()
    plain = open(read_fd, "rb", buffering=PIPE_BUFFER)  # noqa: SIM115
    sink = open(write_fd, "wb", buffering=PIPE_BUFFER)  # noqa: SIM115
    output = _Watched(sink)
    with open(path, "rb") as raw:
        cipher = _Watched(raw)

        def work() -> None:
            try:
                pyrage.decrypt_io(cipher, output, list(keys.identities))
            finally:
                _close_quietly(sink)  # the reader sees the end of the stream

        pump = _Pump(work, "vault-decrypt")
        pump.start()
        try:
            yield plain, lambda: cipher.position
        except BaseException:
            _close_quietly(plain)  # a pump still writing gets EPIPE and ends
            pump.join()
            if cipher.error is not None:
                raise cipher.error from None
            if pump.error is not None and output.error is None:
                raise _decrypt_error(pump.error, label, keys) from None
            raise
        _close_quietly(plain)
        pump.join()
    if cipher.error is not None:
        raise cipher.error
    if pump.error is not None:
        raise _decrypt_error(pump.error, label, keys) from None


@contextmanager
def _passphrase_decrypting(
    path: Path, keys: BackupKeys, label: str
) -> Iterator[tuple[BinaryIO, Callable[[], int]]]:
    import io

    try:
        plain = pyrage.passphrase.decrypt(path.read_bytes(), keys.passphrase or "")
    except pyrage.DecryptError as err:
        raise _decrypt_error(err, label, keys) from None
    size = path.stat().st_size
    yield io.BytesIO(plain), lambda: size


def authenticate(
    path: Path, keys: BackupKeys, label: str, on_progress: Callable[[int, int], None] | None = None
) -> None:
    """Decrypt the whole age file at ``path``, discarding the plaintext: succeeds only when
    every chunk and the stream's end authenticate. Raises as ``decrypting`` does."""
    total = path.stat().st_size
    with decrypting(path, keys, label) as (plain, position):
        while plain.read(PIPE_BUFFER):
            if on_progress is not None:
                on_progress(position(), total)


def copy_stream(source: BinaryIO, target: BinaryIO) -> None:
    """Copy ``source`` to ``target`` in bounded chunks."""
    while True:
        chunk = source.read(PIPE_BUFFER)
        if not chunk:
            return
        target.write(chunk)
