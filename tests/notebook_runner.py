"""Running the notebooks under papermill, reading what they printed, and fingerprinting data dirs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import papermill

from jamey_engine.config import Settings
from jamey_engine.engine import Engine

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "python3"


@dataclass
class Executed:
    """An executed notebook and everything it showed, as text."""

    notebook: nbformat.NotebookNode
    path: Path

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return [output for cell in self.notebook.cells if cell.cell_type == "code" for output in cell.outputs]

    @property
    def text(self) -> str:
        """Printed text and the plain-text form of every displayed value."""
        parts = []
        for output in self.outputs:
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.get("data", {}).get("text/plain", ""))
        return "\n".join(parts)

    def has(self, mime: str) -> bool:
        return any(mime in output.get("data", {}) for output in self.outputs)


def run_notebook(name: str, workdir: Path, **parameters: Any) -> Executed:
    """Execute notebooks/<name> with papermill in notebooks/ and return it; fail on any error output."""
    out = workdir / f"{name.removesuffix('.ipynb')}-{len(list(workdir.glob('*.ipynb')))}.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / name),
        str(out),
        parameters=parameters,
        kernel_name=KERNEL,
        cwd=str(NOTEBOOKS),
        progress_bar=False,
        log_output=False,
    )
    executed = Executed(nbformat.read(out, as_version=4), out)
    errors = [o for o in executed.outputs if o.output_type == "error"]
    assert not errors, f"{name} raised: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    assert "Traceback" not in executed.text, executed.text
    return executed


def fingerprint(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every index file and backup archive, and the rows of every table: equal means unchanged.

    Lock files are left out, and so are the backups' catalog sidecars (``<id>.json``), which
    record each verification by design.
    """
    found = {}
    for path in sorted((data_dir / "memory").rglob("*")):
        if path.is_file() and not path.name.endswith(".lock") and not path.name.startswith("."):
            found[str(path.relative_to(data_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    for path in sorted((data_dir / "backups").glob("*.tar.zst")):
        found[str(path.relative_to(data_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        for table, rows in engine.db.dump().items():
            found[f"table {table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    finally:
        engine.close()
    return found


def counts(data_dir: Path) -> dict[str, int]:
    """Documents per layer and keys in ``data_dir``, read by a fresh engine."""
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        found = {layer: size.documents for layer, size in engine.memory.sizes().layers.items()}
        found["keys"] = engine.keys.count()
        return found
    finally:
        engine.close()
