"""The ``jamey memory`` commands through click's runner: output, JSON shapes and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from jamey_engine.cli import cli
from jamey_engine.memory import LAYERS


@pytest.fixture
def run(data_dir: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, ["--data-dir", str(data_dir), "memory", *args], input=input)

    return invoke


def test_store_then_search_and_get(run) -> None:  # type: ignore[no-untyped-def]
    stored = run("store", "--layer", "working", "the cache hit rate dropped")
    assert stored.exit_code == 0, stored.output
    memory_id = stored.stdout.strip()
    found = run("search", "--layer", "working", "--json", "cache")
    assert found.exit_code == 0, found.output
    rows = json.loads(found.stdout)
    assert [r["id"] for r in rows] == [memory_id] and rows[0]["score"] > 0
    shown = run("get", "--layer", "working", "--json", memory_id)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["content"] == "the cache hit rate dropped"
    deleted = run("delete", "--layer", "working", memory_id)
    assert deleted.exit_code == 0, deleted.output
    missing = run("get", "--layer", "working", memory_id)
    assert missing.exit_code == 1
    assert missing.stderr.strip() == f"error: memory {memory_id} not found in layer 'working'"


def test_store_with_a_timestamp_and_json(run) -> None:  # type: ignore[no-untyped-def]
    result = run("store", "--layer", "episodic", "--timestamp", "2025-05-05T05:05:05Z", "--json", "old news")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["timestamp"] == "2025-05-05T05:05:05+00:00"


def test_a_bad_layer_exits_2_with_one_line_and_no_traceback(run) -> None:  # type: ignore[no-untyped-def]
    result = run("store", "--layer", "nope", "text")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "error: layer 'nope' is not one of: short_term, long_term, working, episodic, semantic"
    ]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("store", "--layer", "working", " "), "content must not be empty"),
        (("store", "--layer", "working", "--timestamp", "soon", "x"), "timestamp 'soon'"),
        (("search", "--layer", "working", "content:("), "malformed"),
        (("search", "--layer", "working", "--limit", "5000", "x"), "limit 5000"),
        (("growth", "--days", "0"), "days 0"),
        (("prune", "--all", "--older-than", "soon"), "--older-than 'soon'"),
        (("prune", "--older-than", "30d"), "--layer"),
        (("prune", "--all", "--layer", "working", "--older-than", "30d"), "not both"),
        (("import", "--layer", "working", "/no/such/file.jsonl"), "does not exist"),
        (("dedupe",), "--layer"),
        (("dedupe", "--all", "--layer", "working"), "not both"),
        (("dedupe", "--layer", "workng"), "layer 'workng' is not one of"),
    ],
)
def test_bad_input_exits_2_with_a_clear_line(run, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_sizes_json_is_keyed_by_layer_with_bytes_and_documents(run) -> None:  # type: ignore[no-untyped-def]
    assert run("store", "--layer", "semantic", "fact").exit_code == 0
    result = run("sizes", "--json")
    assert result.exit_code == 0, result.output
    sizes = json.loads(result.stdout)
    assert list(sizes) == list(LAYERS)
    assert sizes["semantic"]["documents"] == 1 and sizes["semantic"]["bytes"] > 0
    assert sizes["working"]["documents"] == 0
    table = run("sizes")
    assert table.exit_code == 0, table.output
    assert "semantic" in table.stdout and "total" in table.stdout


def test_import_export_round_trip(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"content": f"line {i}"}) + "\n" for i in range(5)))
    imported = run("import", "--layer", "long_term", "--json", str(source))
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout) == {"layer": "long_term", "imported": 5}
    out = tmp_path / "out.jsonl"
    exported = run("export", "--layer", "long_term", str(out))
    assert exported.exit_code == 0, exported.output
    assert len(out.read_text().splitlines()) == 5


def test_growth_json_lists_days_and_layers(run) -> None:  # type: ignore[no-untyped-def]
    assert run("store", "--layer", "working", "today").exit_code == 0
    result = run("growth", "--days", "2", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 2 * len(LAYERS)
    assert sum(r["documents"] for r in rows if r["layer"] == "working") == 1
    table = run("growth", "--days", "2")
    assert table.exit_code == 0, table.output


def test_prune_json_reports_deleted_and_bytes_per_layer(run) -> None:  # type: ignore[no-untyped-def]
    for i in range(20):
        stamp = "2020-01-01T00:00:00Z" if i % 2 else "2099-01-01T00:00:00Z"
        assert run("store", "--layer", "working", "--timestamp", stamp, f"memory {i}").exit_code == 0
    dry = run("prune", "--layer", "working", "--older-than", "30d", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["working"]["deleted"] == 10
    assert json.loads(run("sizes", "--json").stdout)["working"]["documents"] == 20
    refused = run("prune", "--all", "--older-than", "30d", "--json")  # no phrase typed
    assert refused.exit_code == 1 and "cancelled; nothing changed" in refused.stderr
    result = run(
        "prune", "--all", "--older-than", "30d", "--json", "--confirm", "prune 10 memories older than 30d"
    )
    assert result.exit_code == 0, result.output
    applied = json.loads(result.stdout)
    assert applied["status"] == "applied" and applied["verified"] is True and applied["backup_id"]
    report = applied["result"]["layers"]
    assert list(report) == list(LAYERS)
    assert report["working"]["deleted"] == 10
    assert report["working"]["bytes_after"] < report["working"]["bytes_before"]
    assert report["episodic"] == {
        "deleted": 0,
        "bytes_before": report["episodic"]["bytes_before"],
        "bytes_after": report["episodic"]["bytes_before"],
    }
    again = run("prune", "--layer", "working", "--older-than", "30d", "--yes")
    assert again.exit_code == 0, again.output
    assert "deleted          0" in again.stdout


def test_dedupe_dry_run_reports_then_dedupe_deletes_and_records(run, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    for i, text in enumerate(["Disk full", "disk  FULL", "disk full ", "other", "Other", "alone"]):
        stamp = f"2026-01-0{i + 1}T00:00:00Z"
        assert run("store", "--layer", "working", "--timestamp", stamp, text).exit_code == 0
    dry = run("dedupe", "--layer", "working", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)["working"]
    assert (report["groups"], report["deleted"], report["dry_run"]) == (2, 3, True)
    assert json.loads(run("sizes", "--json").stdout)["working"]["documents"] == 6
    result = run("dedupe", "--all", input="dedupe 3 duplicate memories in all layers\n")
    assert result.exit_code == 0, result.output
    assert "working     deleted          3 duplicates in 2 groups" in result.stdout
    found = json.loads(run("search", "--layer", "working", "--json", "--limit", "10", "*").stdout)
    assert sorted(m["content"] for m in found) == ["Disk full", "alone", "other"]  # the oldest of each
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine
    from jamey_engine.oplog import recent_operations

    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        rows = recent_operations(engine.db, kind="dedupe")
        assert {(r["layer"], r["count"], r["actor"]) for r in rows if r["count"]} == {("working", 3, "cli")}
        assert len(rows) == len(LAYERS)
    finally:
        engine.close()


def test_dedupe_dry_run_goes_through_engine_dedupe_and_records_nothing(  # type: ignore[no-untyped-def]
    run, data_dir: Path, monkeypatch
) -> None:
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine
    from jamey_engine.oplog import recent_operations

    for text in ["Disk full", "disk  FULL", "other"]:
        assert run("store", "--layer", "working", text).exit_code == 0
    calls: list[dict[str, object]] = []
    real = Engine.dedupe

    def watched(self, layers=None, **options):  # type: ignore[no-untyped-def]
        calls.append({"layers": list(layers or []), **options})
        return real(self, layers, **options)

    monkeypatch.setattr(Engine, "dedupe", watched)
    dry = run("dedupe", "--layer", "working", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["working"]["deleted"] == 1
    assert [(call["layers"], call["dry_run"], call["source"]) for call in calls] == [
        (["working"], True, "cli")
    ]
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        assert recent_operations(engine.db, kind="dedupe") == []
        assert engine.memory.count("working") == 3
    finally:
        engine.close()
