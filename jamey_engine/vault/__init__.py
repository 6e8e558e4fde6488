"""PhoenixVault: backups, verification, retention and verified restores.

``Vault(settings, memory=, db=, events=)`` is the whole API; ``BackupInfo`` describes one
backup and ``RestorePlan`` what a restore changes. Modules: ``archive`` (the .tar.zst format),
``manifest`` (ids and the manifest), ``catalog`` (sidecars, listing, stale-file cleanup),
``core`` (the Vault: listing and records), ``create``, ``verify``, ``rekey``, ``retain`` (delete and
retention), ``restore`` (plan and restore), ``offsite``.
"""

from jamey_engine.vault.catalog import BackupInfo, RestorePlan
from jamey_engine.vault.core import Vault

__all__ = ["BackupInfo", "RestorePlan", "Vault"]
