"""The migration files are numbered in the order alembic applies them, so a reader (and
`jamey doctor`'s "newest migration") never has to decode a chain that jumps between files."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from jamey_engine.db import alembic_config


def chain_in_order() -> list[tuple[str, str]]:
    """(file name, revision id) from the base to the head, following down_revision."""
    scripts = ScriptDirectory.from_config(alembic_config())
    heads = scripts.get_heads()
    assert len(heads) == 1, f"the migrations must form one chain, not branches: heads {heads}"
    walked = [(Path(s.path).name, s.revision) for s in scripts.walk_revisions("base", "heads")]
    return list(reversed(walked))


def test_the_file_numbers_follow_the_chain_from_the_first_migration_to_the_head() -> None:
    chain = chain_in_order()
    numbers = [name.split("_", 1)[0] for name, _revision in chain]
    assert numbers == [f"{n:04d}" for n in range(1, len(chain) + 1)], chain


def test_every_file_in_versions_is_in_the_chain() -> None:
    versions = Path(ScriptDirectory.from_config(alembic_config()).versions)
    files = {p.name for p in versions.glob("[0-9]*.py")}
    assert files == {name for name, _revision in chain_in_order()}
