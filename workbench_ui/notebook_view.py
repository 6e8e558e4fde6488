"""An executed notebook drawn as Streamlit elements: markdown, printed text, tables, images,
plotly charts and errors (one line each, as text: an error quotes whatever the run was given), in
cell order. No HTML of the notebook's own is run in
the page: tables go through ``st.html`` (sanitised), charts through ``st.plotly_chart``, so the
run view works on a closed network (nbconvert's HTML loads scripts from a CDN; it stays a download).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import streamlit as st

from workbench_ui import untrusted

PLOTLY = "application/vnd.plotly.v1+json"
_SKIP_TAGS = {"injected-parameters", "parameters"}


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _output(output: Any, key: str) -> None:
    kind = output.get("output_type")
    if kind == "stream":
        st.code(_text(output.get("text", "")), language=None)
        return
    if kind == "error":
        st.error(untrusted.text(f"{output.get('ename')}: {output.get('evalue')}"))
        return
    data = output.get("data", {})
    if PLOTLY in data:
        st.plotly_chart(dict(data[PLOTLY]), key=key)
    elif "image/png" in data:
        st.image(base64.b64decode(_text(data["image/png"])))
    elif "text/html" in data and "<table" in _text(data["text/html"]):
        st.html(_text(data["text/html"]))
    elif "text/markdown" in data:
        st.markdown(_text(data["text/markdown"]))
    elif "text/plain" in data:
        st.code(_text(data["text/plain"]), language=None)


def show_notebook(path: Path, *, key: str, show_code: bool = False) -> None:
    """Draw the executed notebook at ``path`` (its parameter cells left out; code shown only when
    ``show_code``). A missing or unreadable file is one line."""
    import nbformat

    try:
        notebook = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as err:
        st.warning(f"The executed notebook cannot be read: {err}")
        return
    for index, cell in enumerate(notebook.cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "markdown" and "papermill-error-cell-tag" not in tags:
            st.markdown(_text(cell.source))
            continue
        if cell.cell_type != "code" or tags & _SKIP_TAGS:
            continue
        if show_code:
            st.code(_text(cell.source), language="python")
        for number, output in enumerate(cell.get("outputs", [])):
            _output(output, f"{key}-{index}-{number}")
