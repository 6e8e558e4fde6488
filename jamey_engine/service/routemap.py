"""Which of the app's route templates match a request's path, and which methods it serves there.

Two answers need more than the one route the router picked (if any): the ``Allow`` header of a
405 (every method served at the path, RFC 9110) and the metrics' route label of an answer given
before routing (a 413 on Content-Length). FastAPI (0.165 here) keeps included routers nested:
``app.routes`` holds one object per ``include_router``, with neither path nor methods, so a walk
over it finds none of the service's routes. Only public interfaces are used instead:

- the templates and their methods come from the app's OpenAPI document (``paths``), plus the
  plain Starlette routes in ``app.routes`` that it leaves out (``/openapi.json``, ``/docs``,
  ``/redoc``); a template matches a path as a Starlette ``Route`` does (``{name}`` is one segment);
- whether the app really serves a method at the path is asked of the app's router, through the
  ``matches`` every Starlette route implements, with the request's own scope and that method. So
  the answer honours what a template cannot show: a convertor (the retention routes' layer
  segment refuses ``plan`` and ``apply``, so ``PUT /admin/retention/plan`` is a 405 naming only
  GET) and HEAD, which Starlette's routes serve with GET and FastAPI's routes do not.

The table is built once per app, on first use, and kept on ``app.state``; building it builds the
OpenAPI document if nothing has yet (about a tenth of a second, as the first ``/openapi.json``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NoReturn

from starlette.routing import Match, Route
from starlette.types import Scope

log = logging.getLogger(__name__)

# The operations of an OpenAPI path item (its other keys are parameters, summary, servers...).
OPERATIONS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
# What the server puts in an HTTP scope (the ASGI spec), without what routing adds: a probe is
# the request as it arrived, with another method.
REQUEST_KEYS = (
    "type",
    "asgi",
    "http_version",
    "scheme",
    "path",
    "raw_path",
    "root_path",
    "query_string",
    "headers",
    "client",
    "server",
)


def _never_called(*_: Any) -> NoReturn:
    raise AssertionError("a route template only matches paths; it serves nothing")


@dataclass(frozen=True)
class Template:
    """One path template and the methods the OpenAPI document (or its route) names for it."""

    path: str
    methods: frozenset[str]
    route: Route  # matches the template's paths, nothing more

    @classmethod
    def of(cls, path: str, methods: set[str]) -> Template:
        # HEAD is a candidate wherever GET is: the router says whether it is served.
        candidates = frozenset(methods | {"HEAD"} if "GET" in methods else methods)
        return cls(path, candidates, Route(path, _never_called, methods=sorted(candidates)))

    def covers(self, scope: Scope) -> bool:
        """Does the request's path fit this template (whatever its method)?"""
        return self.route.matches(scope)[0] is not Match.NONE


class RouteMap:
    """The app's route templates, and the methods its router serves at a given path."""

    def __init__(self, app: Any) -> None:
        self.router = app.router
        self.templates = _templates(app)

    def serves(self, scope: Scope, method: str) -> bool:
        """Would the app's router hand this request, with ``method``, to a route?"""
        probe = {key: scope[key] for key in REQUEST_KEYS if key in scope}
        probe["method"] = method
        for route in self.router.routes:
            try:
                if route.matches(probe)[0] is Match.FULL:
                    return True
            except Exception:  # a malformed path must not break the answer or its metrics
                log.debug("route matching failed for %s %s", method, scope.get("path"), exc_info=True)
        return False

    def matching(self, scope: Scope) -> list[tuple[str, frozenset[str]]]:
        """The templates the request's path fits that serve it, each with the methods served.

        A template the path fits but whose route refuses it (a convertor) is left out, as the
        router leaves it out.
        """
        served: dict[str, bool] = {}
        found = []
        for template in self.templates:
            try:
                fits = template.covers(scope)
            except Exception:
                log.debug("template matching failed for %s", scope.get("path"), exc_info=True)
                fits = False
            if not fits:
                continue
            for method in template.methods - served.keys():
                served[method] = self.serves(scope, method)
            methods = frozenset(method for method in template.methods if served[method])
            if methods:
                found.append((template.path, methods))
        return found

    def allowed(self, scope: Scope) -> list[str]:
        """Every method served at the request's path, sorted (a 405's ``Allow``)."""
        return sorted(set().union(*(methods for _, methods in self.matching(scope))))

    def template(self, scope: Scope) -> str | None:
        """The template of the route that serves (or would serve) the request's path, if any:
        the one serving its method, else the first the path fits (a 405's route)."""
        found = self.matching(scope)
        for path, methods in found:
            if scope.get("method") in methods:
                return path
        return found[0][0] if found else None


def _templates(app: Any) -> tuple[Template, ...]:
    methods: dict[str, set[str]] = {}
    try:
        paths = app.openapi().get("paths", {})
    except Exception:  # the same failure shows at /openapi.json; the plain routes still count
        log.error("could not build the OpenAPI document: route templates are incomplete", exc_info=True)
        paths = {}
    for path, item in paths.items():
        methods.setdefault(path, set()).update(name.upper() for name in item if name in OPERATIONS)
    for route in getattr(app, "routes", ()):  # those the document leaves out (/openapi.json, /docs)
        if isinstance(route, Route) and route.methods:
            methods.setdefault(route.path_format, set()).update(route.methods)
    return tuple(Template.of(path, names) for path, names in methods.items() if names)


def route_map(app: Any) -> RouteMap:
    """The app's RouteMap, built on first use and kept on ``app.state``."""
    table = getattr(app.state, "route_map", None)
    if table is None:
        table = app.state.route_map = RouteMap(app)
    return table
