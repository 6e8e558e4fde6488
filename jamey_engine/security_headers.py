"""The workbench's security headers, defined once: nginx's template (``{{workbench_csp}}``) and the
workbench's own ASGI entry point (``workbench_asgi.py``, used when no nginx is in front) send the
same ones.

The Content-Security-Policy allows what Streamlit needs and nothing more: its inline scripts and
styles, ``data:``/``blob:`` images, frames and workers, and ``connect-src 'self'`` (which in CSP
Level 3 also covers the same origin's ``ws:``/``wss:`` websocket). ``'wasm-unsafe-eval'`` lets the
Dashboards page compile its WebAssembly (Chromium reports ``script-src wasm-eval`` without it); it
allows no JavaScript ``eval``. No ``'unsafe-eval'``, no websocket
to any other host, no third-party origin at all.
"""

from __future__ import annotations

WORKBENCH_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; frame-src 'self' blob: data:; "
    "worker-src 'self' blob:; frame-ancestors 'self'; base-uri 'self'; form-action 'self'"
)

# Sent on every workbench answer (HSTS only by nginx: the workbench alone speaks plain HTTP).
WORKBENCH_HEADERS: dict[str, str] = {
    "Content-Security-Policy": WORKBENCH_CSP,
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
