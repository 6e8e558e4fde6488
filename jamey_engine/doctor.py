"""``jamey doctor``: everything about a Jamey installation that may need action, at once.

Read-only: it never creates, migrates, cleans or repairs anything (a missing SQLite file or
memory dir is reported, not created). Each check gives one Finding: ``ok``, ``warning``
(worth knowing) or ``problem`` (needs action; ``jamey doctor`` then exits non-zero), with
the command that fixes it where there is one. The CLI prints the findings and the workbench
Overview page shows the same list.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jamey_engine import thresholds
from jamey_engine.config import Settings
from jamey_engine.durations import format_duration, utcnow
from jamey_engine.errors import JameyError
from jamey_engine.privacy import SHARED_BITS

OK, WARNING, PROBLEM = "ok", "warning", "problem"
# The permission walk stops after this many entries (a data dir this big says so).
MAX_WALK = 200_000


@dataclass(frozen=True)
class Finding:
    """One check's outcome: its name, ``ok``/``warning``/``problem``, what was found, the fix."""

    check: str
    status: str
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Report:
    """Every finding, in a fixed order."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def needs_action(self) -> bool:
        """True when any finding is a problem."""
        return any(finding.status == PROBLEM for finding in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``needs_action`` and the findings."""
        return {"needs_action": self.needs_action, "findings": [asdict(f) for f in self.findings]}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def check_data_dir(settings: Settings) -> list[Finding]:
    """The data dir: exists, owned by this user, not group- or world-accessible."""
    path = settings.data_dir
    if not path.exists():
        return [Finding("data dir", WARNING, f"{path} does not exist yet (created 0700 on first use)")]
    info = path.stat()
    findings = []
    if info.st_uid != os.geteuid():
        findings.append(
            Finding(
                "data dir owner",
                PROBLEM,
                f"{path} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})",
                f"chown -R {os.geteuid()} {path}",
            )
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & SHARED_BITS:
        status = WARNING if settings.allow_shared_data_dir else PROBLEM
        note = " (allowed by JAMEY_ALLOW_SHARED_DATA_DIR=1)" if settings.allow_shared_data_dir else ""
        findings.append(
            Finding(
                "data dir permissions",
                status,
                f"{path} has mode {mode:04o}: group or others can access it{note}",
                f"chmod 700 {path}",
            )
        )
    else:
        findings.append(Finding("data dir permissions", OK, f"{path} has mode {mode:04o}"))
    return findings


def _walk(root: Path) -> tuple[list[tuple[Path, int]], list[Path], int, bool]:
    """(shared entries with their modes, entries of other owners, entries seen, walk cut short)."""
    shared: list[tuple[Path, int]] = []
    foreign: list[Path] = []
    seen = 0
    uid = os.geteuid()
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in [*subdirs, *sorted(files)]:
            seen += 1
            if seen > MAX_WALK:
                return shared, foreign, seen - 1, True
            path = Path(directory) / name
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue  # removed while we looked (a running backup's temporary)
            if stat.S_ISLNK(info.st_mode):
                continue
            if stat.S_IMODE(info.st_mode) & SHARED_BITS:
                shared.append((path, stat.S_IMODE(info.st_mode)))
            if info.st_uid != uid:
                foreign.append(path)
    return shared, foreign, seen, False


def check_contents(settings: Settings) -> list[Finding]:
    """Every file and directory under the data dir (and a separate backup dir) is owner-only."""
    findings = []
    roots = [settings.data_dir]
    if not settings.backup_dir.is_relative_to(settings.data_dir):
        roots.append(settings.backup_dir)
    for root in roots:
        if not root.is_dir():
            continue
        shared, foreign, seen, cut = _walk(root)
        label = "data dir contents" if root == settings.data_dir else "backup dir contents"
        if shared:
            path, mode = shared[0]
            findings.append(
                Finding(
                    label,
                    PROBLEM,
                    f"{len(shared)} of {seen} entries under {root} are accessible to group or others "
                    f"(e.g. {path} {mode:04o})",
                    f"chmod -R go-rwx {root}",
                )
            )
        else:
            findings.append(
                Finding(
                    label,
                    OK,
                    f"{seen} entries under {root}, all owner-only" + (" (walk cut short)" if cut else ""),
                )
            )
        if foreign:
            findings.append(
                Finding(
                    label.replace("contents", "ownership"),
                    PROBLEM,
                    f"{len(foreign)} entries under {root} belong to another user (e.g. {foreign[0]})",
                    f"chown -R {os.geteuid()} {root}",
                )
            )
    if not settings.backup_dir.is_relative_to(settings.data_dir) and settings.backup_dir.is_dir():
        mode = _mode(settings.backup_dir)
        if mode & SHARED_BITS:
            findings.append(
                Finding(
                    "backup dir permissions",
                    PROBLEM,
                    f"{settings.backup_dir} has mode {mode:04o}: group or others can access it",
                    f"chmod 700 {settings.backup_dir}",
                )
            )
    return findings


def check_free_space(settings: Settings) -> list[Finding]:
    """Free space on the data dir's filesystem (and the backup dir's, when elsewhere)."""
    findings = []
    seen: set[int] = set()
    for label, path in (("free space", settings.data_dir), ("backup free space", settings.backup_dir)):
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        device = existing.stat().st_dev
        if device in seen:
            continue
        seen.add(device)
        usage = shutil.disk_usage(existing)
        ratio = usage.free / usage.total if usage.total else 0.0
        gib = thresholds.GIB
        text = f"{usage.free / gib:.1f} GiB free of {usage.total / gib:.1f} GiB ({ratio:.0%}) at {existing}"
        # The rule of JameyDataDirDiskNearlyFull, with an absolute floor the ratios cannot give.
        if usage.free < thresholds.DISK_FREE_MIN_BYTES or ratio < thresholds.DISK_FREE_CRITICAL_RATIO:
            findings.append(
                Finding(label, PROBLEM, text, "free some space (old backups: jamey backup prune --keep N)")
            )
        elif ratio < thresholds.DISK_FREE_WARNING_RATIO:
            findings.append(Finding(label, WARNING, text))
        else:
            findings.append(Finding(label, OK, text))
    return findings


def check_database(settings: Settings) -> list[Finding]:
    """The database answers, and its schema is at the newest migration (never migrates it)."""
    from jamey_engine.db import Database, head_revision

    try:
        db = Database(settings.database_url) if not settings.database_url.startswith("sqlite") else None
    except JameyError as err:
        return [Finding("database", PROBLEM, err.message)]
    if db is None:
        from sqlalchemy import make_url

        file = make_url(settings.database_url).database
        if file and file != ":memory:" and not Path(file).exists():
            return [Finding("database", WARNING, f"{file} does not exist yet (created on first use)")]
        db = Database(settings.database_url)
    try:
        current = db.current_revision()
    except JameyError as err:
        return [Finding("database", PROBLEM, f"{db.safe_url}: {err.message}")]
    except Exception as err:
        return [Finding("database", PROBLEM, f"{db.safe_url}: unusable ({type(err).__name__})")]
    finally:
        db.close()
    head = head_revision()
    if current == head:
        return [Finding("database version", OK, f"{db.safe_url} is at the newest migration ({head})")]
    return [
        Finding(
            "database version",
            PROBLEM,
            f"{db.safe_url} is at migration {current or 'none (empty)'}, this jamey's newest is {head}",
            "jamey db upgrade",
        )
    ]


def check_layers(settings: Settings) -> list[Finding]:
    """Each memory layer's index: present and readable (documents and bytes)."""
    from jamey_engine.memory import LAYERS, MemoryStore

    if not settings.memory_dir.is_dir():
        return [
            Finding("memory layers", WARNING, f"{settings.memory_dir} does not exist yet (no memory stored)")
        ]
    # Without the write-ahead log: the figures are the index's as it is, and writes still in a
    # (possibly live) service's log stay there for it to flush; the doctor only names them.
    store = MemoryStore(settings.memory_dir, lock_timeout=settings.lock_timeout, wal=False)
    findings = []
    try:
        for layer in LAYERS:
            try:
                size = store.layer_size(layer)
                waiting = store.layer_log(layer).active_bytes() if settings.wal else 0
            except JameyError as err:
                findings.append(Finding(f"layer {layer}", PROBLEM, err.message, "jamey backup restore <id>"))
                continue
            logged = f", {waiting} bytes of writes waiting in its write-ahead log" if waiting else ""
            findings.append(
                Finding(
                    f"layer {layer}",
                    OK,
                    f"{size.documents} documents, {size.bytes} bytes, {size.segments} segments{logged}",
                )
            )
    finally:
        store.close()
    return findings


def check_backups(settings: Settings) -> list[Finding]:
    """The newest backup's age and state, whether new backups are encrypted, the key files."""
    from jamey_engine.vault.catalog import Catalog
    from jamey_engine.vault.crypto import BackupKeys

    findings = []
    catalog = Catalog(settings.backup_dir, settings.data_dir)
    infos = [info for info in map(catalog.info, catalog.ids()) if info is not None]
    infos.sort(key=lambda info: (info.created_at, info.id), reverse=True)
    limit = thresholds.BACKUP_MAX_AGE  # the age at which JameyBackupTooOld fires
    latest = infos[0] if infos else None
    if latest is None:
        findings.append(
            Finding("backups", WARNING, f"no backup in {settings.backup_dir}", "jamey backup create")
        )
    else:
        age = utcnow() - latest.created_at
        hours = age.total_seconds() / 3600
        text = (
            f"newest {latest.id}, {hours:.1f} h old, {latest.status}; {len(infos)} in {settings.backup_dir}"
        )
        if latest.status == "corrupt":
            findings.append(Finding("backups", PROBLEM, f"{text}: {latest.problem}", "jamey backup create"))
        elif age > limit:
            findings.append(
                Finding(
                    "backups",
                    WARNING,
                    f"{text} (older than {format_duration(limit)}: JameyBackupTooOld fires)",
                    "jamey backup create",
                )
            )
        else:
            findings.append(Finding("backups", OK, text))
    try:
        keys = BackupKeys.from_settings(settings)
    except JameyError as err:
        return [*findings, Finding("backup encryption", PROBLEM, err.message)]
    if not keys.encrypts:
        findings.append(
            Finding(
                "backup encryption",
                WARNING,
                "backups are written unencrypted (plain zstd)",
                "set JAMEY_BACKUP_RECIPIENTS to an age public key (age-keygen makes one)",
            )
        )
    else:
        how = f"{len(keys.recipients)} age recipient(s)" if keys.recipients else "a passphrase"
        findings.append(Finding("backup encryption", OK, f"new backups are encrypted to {how}"))
        plain = [info.id for info in infos if not info.encrypted]
        if plain:
            findings.append(
                Finding(
                    "unencrypted backups",
                    WARNING,
                    f"{len(plain)} older backup(s) are not encrypted (e.g. {plain[0]})",
                    f"jamey backup rekey {plain[0]}",
                )
            )
    for variable, value in (
        ("JAMEY_BACKUP_IDENTITY_FILE", settings.backup_identity_file),
        ("JAMEY_BACKUP_PASSPHRASE_FILE", settings.backup_passphrase_file),
    ):
        if value and Path(value).exists():
            mode = _mode(Path(value))
            if mode & SHARED_BITS:
                findings.append(
                    Finding(
                        "key file permissions",
                        PROBLEM,
                        f"{variable} {value} has mode {mode:04o}: group or others can read a secret",
                        f"chmod 600 {value}",
                    )
                )
    return findings


def check_backup_trust(settings: Settings) -> list[Finding]:
    """Unsigned backups, the signing key file, and whether the newest backup is off-site."""
    from jamey_engine.vault.catalog import Catalog

    catalog = Catalog(settings.backup_dir, settings.data_dir)
    infos = [info for info in map(catalog.info, catalog.ids()) if info is not None]
    infos.sort(key=lambda info: (info.created_at, info.id), reverse=True)
    findings = []
    unsigned = [info.id for info in infos if not info.signed]
    if unsigned:
        findings.append(
            Finding(
                "unsigned backups",
                WARNING,
                f"{len(unsigned)} backup(s) carry no manifest signature (e.g. {unsigned[0]}); restoring "
                "one needs --trust-unsigned",
                "take a new backup (it is signed); delete the unsigned ones once it is verified",
            )
        )
    key_file = settings.backup_signing_key_file
    if key_file.exists():
        mode = _mode(key_file)
        if mode & SHARED_BITS:
            findings.append(
                Finding(
                    "signing key permissions",
                    PROBLEM,
                    f"JAMEY_BACKUP_SIGNING_KEY_FILE {key_file} has mode {mode:04o}: group or others can read it",
                    f"chmod 600 {key_file}",
                )
            )
        else:
            findings.append(
                Finding(
                    "backup signing",
                    OK,
                    f"backups are signed with {key_file} (keep a copy in the emergency kit)",
                )
            )
    if not settings.backup_remote:
        findings.append(
            Finding(
                "off-site copies",
                WARNING,
                "backups live only on this machine",
                "set JAMEY_BACKUP_REMOTE to an rclone remote (and JAMEY_RCLONE_CONFIG to its 0600 config)",
            )
        )
    elif infos and infos[0].location != "both":
        from jamey_engine.vault.safety import backup_safety

        newest = infos[0]
        copied = backup_safety(settings).last_remote_copy_at
        findings.append(
            Finding(
                "off-site copies",
                WARNING,
                f"the newest backup {newest.id} is not on the remote"
                + (f": {newest.problem}" if newest.problem else "")
                + (
                    f" (last copy that succeeded: {copied.isoformat(timespec='seconds')})"
                    if copied
                    else " (no copy has succeeded yet)"
                ),
                "jamey backup push",
            )
        )
    elif infos:
        checked = infos[0].remote_checked_at
        when = checked.isoformat(timespec="seconds") if checked else "unknown"
        findings.append(
            Finding(
                "off-site copies", OK, f"the newest backup {infos[0].id} is on the remote (checked {when})"
            )
        )
    return findings


def check_restore_drill(settings: Settings) -> list[Finding]:
    """When a restore drill last passed (the restore_drill runbook), whether the last one failed,
    and whether the drill's schedule is enabled."""
    from jamey_engine.vault.restore_journal import read_journal
    from jamey_engine.vault.safety import backup_safety

    findings = []
    journal = read_journal(settings.memory_dir)  # a doctor only looks: the next start finishes it
    if journal is not None:
        findings.append(
            Finding(
                "interrupted restore",
                WARNING,
                f"a restore of backup {journal.backup_id} was interrupted (phase {journal.phase}); "
                "the next start of the service or any jamey command rolls it forward or back",
                "jamey backup list",
            )
        )
    facts = backup_safety(settings)
    if facts.drills_enabled is None:
        return findings  # no database yet, or not at head: the database check reports it
    if facts.drills_enabled:
        findings.append(Finding("restore drill schedule", OK, "the restore_drill runbook runs on a schedule"))
    else:
        findings.append(
            Finding(
                "restore drill schedule",
                WARNING,
                "no enabled restore_drill schedule: nobody learns that the backups stopped restoring",
                "jamey runbook schedule add restore_drill --cron '0 4 * * 0' (or resume the paused one)",
            )
        )
    if facts.last_drill_at is None:
        findings.append(
            Finding("restore drill", WARNING, "no restore drill has run", "run the restore_drill runbook")
        )
    elif not facts.last_drill_passed:
        findings.append(
            Finding(
                "restore drill",
                PROBLEM,
                f"the last drill failed: {facts.last_drill_detail}",
                "run the restore_drill runbook",
            )
        )
    else:
        findings.append(
            Finding(
                "restore drill", OK, f"last passed {facts.last_drill_passed_at}: {facts.last_drill_detail}"
            )
        )
    return findings


def check_approvals(settings: Settings) -> list[Finding]:
    """Whether a team's restores need a second person: with admin keys of two or more names and
    ``restore`` not in JAMEY_APPROVALS, one admin alone can restore (and undo others' work)."""
    import sqlalchemy as sa

    from jamey_engine.db import Database, head_revision
    from jamey_engine.models import ApiKey

    if "restore" in settings.approvals:
        return [Finding("approvals", OK, f"JAMEY_APPROVALS: {', '.join(settings.approvals)}")]
    if settings.database_url.startswith("sqlite") and not (settings.data_dir / "jamey.db").exists():
        return []
    db = Database(settings.database_url)
    try:
        if db.current_revision() != head_revision():
            return []  # the database check reports it; reading would migrate it
        now = utcnow()
        with db.connect() as conn:
            rows = conn.execute(
                sa.select(ApiKey.name, ApiKey.scopes, ApiKey.expires_at, ApiKey.grace_until).where(
                    ApiKey.revoked_at.is_(None)
                )
            ).all()
    finally:
        db.close()
    admins = sorted(
        {
            row.name
            for row in rows
            if "admin" in str(row.scopes).split()
            and (row.expires_at is None or row.expires_at > now)
            and (row.grace_until is None or row.grace_until > now)
        }
    )
    if len(admins) < 2:
        return []
    shown = ", ".join(admins[:5]) + (f" and {len(admins) - 5} more" if len(admins) > 5 else "")
    return [
        Finding(
            "approvals",
            WARNING,
            f"{len(admins)} people hold admin keys ({shown}) but a restore needs no second person's "
            "approval: restore is not in JAMEY_APPROVALS",
            "set JAMEY_APPROVALS=restore (add prune, dedupe, retention, backup-delete, key-revoke as wanted)",
        )
    ]


CHECKS: tuple[Callable[[Settings], list[Finding]], ...] = (
    check_data_dir,
    check_contents,
    check_free_space,
    check_database,
    check_layers,
    check_backups,
    check_backup_trust,
    check_restore_drill,
    check_approvals,
)


def run(settings: Settings) -> Report:
    """Run every check against ``settings``; never raises for what it finds (a check that
    fails unexpectedly becomes a problem finding naming the error class)."""
    findings: list[Finding] = []
    for check in CHECKS:
        try:
            findings.extend(check(settings))
        except Exception as err:
            name = check.__name__.removeprefix("check_").replace("_", " ")
            detail = err.message if isinstance(err, JameyError) else f"{type(err).__name__}: {err}"
            findings.append(Finding(name, PROBLEM, f"the check failed: {detail}"))
    return Report(findings)
