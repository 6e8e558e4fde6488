"""The page -> scope map is declared once (workbench_ui/menu.py): the menu is drawn from it, and
every page's guard must ask for the scope it declares (read from the page's source, so a page
that still names its scope itself is held to the map too)."""

from __future__ import annotations

import re
from pathlib import Path

from workbench_ui.menu import HOME, PAGE_SCOPES

PAGES = Path(__file__).resolve().parents[2] / "pages"
GUARD = re.compile(r'ui\.require_(page|session)\("([^"]+)"\)')


def test_every_page_but_sign_in_is_declared_with_its_scope() -> None:
    files = {path.stem for path in PAGES.glob("*.py")} - {"signin"}
    assert set(PAGE_SCOPES) == files
    assert HOME in PAGE_SCOPES


def test_each_page_guards_itself_with_the_scope_the_menu_declares() -> None:
    for name, needs in PAGE_SCOPES.items():
        guards = GUARD.findall((PAGES / f"{name}.py").read_text())
        assert len(guards) == 1, f"pages/{name}.py should call ui.require_page once, found {guards}"
        kind, argument = guards[0]
        if kind == "page":
            assert argument == name, f"pages/{name}.py guards itself as page {argument!r}"
        else:
            assert argument == needs, f"pages/{name}.py asks for {argument}, the menu declares {needs}"
