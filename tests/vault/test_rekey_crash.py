"""A rekey killed at any point leaves exactly one sound backup, and delete removes every form.

The rekey runs in its own process, which dies (os._exit, as a SIGKILL or a power cut would
leave it: no cleanup code runs) at one step of encrypting a plain backup.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from jamey_engine.engine import Engine

from .support import fill
from .test_encryption import AgeKey, engine_with, make_key  # noqa: F401 (the fixture)

CRASHING_REKEY = textwrap.dedent(
    """
    import os, pathlib, sys
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine
    from jamey_engine.vault import catalog

    point, backup_id = sys.argv[1], sys.argv[2]
    real_replace, real_unlink, real_sidecar = os.replace, pathlib.Path.unlink, catalog.Catalog.write_sidecar
    sidecar_writes = []

    def die(at):
        if point == at:
            os._exit(9)

    def replace(source, target, *args, **kwargs):
        archive = str(target).endswith(".tar.zst.age")
        if archive:
            die("before the rename")
        real_replace(source, target, *args, **kwargs)
        if archive:
            die("after the rename")

    def unlink(self, *args, **kwargs):
        real_unlink(self, *args, **kwargs)
        if self.name.endswith(".tar.zst"):
            die("after the plain archive is removed")

    def write_sidecar(self, manifest, size, verify, purpose, **fields):
        if purpose == "rekey":
            sidecar_writes.append(purpose)
            die("before the catalog" if len(sidecar_writes) == 1 else "before the final catalog")
        real_sidecar(self, manifest, size, verify, purpose, **fields)

    os.replace, pathlib.Path.unlink, catalog.Catalog.write_sidecar = replace, unlink, write_sidecar
    Engine(Settings.from_env()).vault.rekey(backup_id)
    print("finished")
    """
)

POINTS = [
    "before the catalog",
    "before the rename",
    "after the rename",
    "after the plain archive is removed",
    "before the final catalog",
    "never",
]


@pytest.mark.parametrize("point", POINTS)
def test_a_rekey_killed_at_any_point_leaves_one_sound_backup_and_delete_removes_every_form(
    engine: Engine,
    make_key: Callable[[str], AgeKey],  # noqa: F811
    point: str,
) -> None:
    key = make_key("ops")
    fill(engine, per_layer=3)
    backup = engine.vault.create()
    other = engine.vault.create()
    engine.close()
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(engine.settings.data_dir),
        "JAMEY_BACKUP_RECIPIENTS": key.recipient,
    }
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_REKEY, point, backup.id], env=env, capture_output=True, text=True
    )
    assert done.returncode == (0 if point == "never" else 9), done.stderr

    after = engine_with(engine.settings, JAMEY_BACKUP_IDENTITY_FILE=str(key.identity_file))
    try:
        listed = [info for info in after.vault.list() if info.id == backup.id]
        assert len(listed) == 1 and listed[0].status != "corrupt", listed
        backups = engine.settings.backup_dir
        files = sorted(p.name for p in backups.iterdir() if p.name.startswith(backup.id))
        assert len([name for name in files if ".tar.zst" in name]) == 1, files
        assert after.vault.verify(backup.id).status == "ok"

        after.vault.delete(backup.id)
        assert [info.id for info in after.vault.list()] == [other.id]
        assert not [p.name for p in backups.iterdir() if backup.id in p.name]
    finally:
        after.close()
