"""Fixtures for the abuse reproductions: real apps and real ``jamey serve`` processes on
temporary data dirs (the service tests' fixtures), and the workbench's AppTest personas."""

from __future__ import annotations

from service import service_support
from workbench.conftest import admin_app, admin_key, app, wb_env  # noqa: F401

make_client = service_support.make_client
serve = service_support.serve
