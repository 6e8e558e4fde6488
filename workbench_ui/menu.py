"""The workbench's pages: their menu sections, titles and icons, and the scope each one needs.

Declared once: ``app.py`` registers the pages and draws the menu (only the pages the signed-in
key may open) from it, and each page's guard asks for the same scope
(``workbench_ui.require_page``). No Streamlit here, so tests read it without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass

from jamey_engine.keys.scopes import Scope


@dataclass(frozen=True)
class MenuPage:
    """One page of ``pages/``: ``name`` is its file (and URL path) without ``.py``."""

    name: str
    title: str
    icon: str
    needs: Scope


#: The page a signed-in key lands on.
HOME = "overview"
SECTIONS: dict[str, tuple[MenuPage, ...]] = {
    "Operations": (
        MenuPage("overview", "Overview", ":material/monitor_heart:", "ops:read"),
        MenuPage("dashboards", "Dashboards", ":material/monitoring:", "ops:read"),
        MenuPage("alerts", "Alerts", ":material/notifications_active:", "ops:read"),
        MenuPage("runbooks", "Runbooks", ":material/play_circle:", "ops:read"),
        MenuPage("approvals", "Approvals", ":material/approval:", "ops:write"),
    ),
    "Administration": (
        MenuPage("keys", "API keys", ":material/key:", "admin"),
        MenuPage("memory", "Memory", ":material/database:", "ops:read"),
        MenuPage("backups", "Backups", ":material/backup:", "ops:read"),
    ),
}
#: The scope each page needs to open, by page name.
PAGE_SCOPES: dict[str, Scope] = {page.name: page.needs for pages in SECTIONS.values() for page in pages}
