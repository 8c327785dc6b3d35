"""The OpenAPI 3.1 document of ``/api/v1``, generated from the route table.

Generated (not hand-written) so it cannot drift from what the server accepts: request
bodies are the same pydantic models the handlers validate with.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from clgwd import __version__
from clgwd.web.api import Route
from clgwd.web.security import CSRF_HEADER, PUBLIC_PATHS, SESSION_COOKIE, UNSAFE_METHODS

_ERROR = {"$ref": "#/components/schemas/Error"}
_ERROR_CODES = {
    "401": "Not logged in, or wrong password/setup code",
    "403": "Missing or wrong CSRF token, or a cross-origin request",
    "404": "Not found (e.g. a call trace file that was deleted, an unknown tunnel)",
    "409": "Conflicting state (e.g. password already set)",
    "421": "The Host header names a host this gateway is not",
    "422": "Invalid input; the message names the field",
    "429": "Locked out after failed attempts; see Retry-After",
    "501": "The part that owns this capability is not in this gateway version yet",
}


def build_openapi(routes: Iterable[Route]) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}
    paths: dict[str, Any] = {"/api/v1/health": {"get": {
        "summary": "Health of every component", "security": [], "responses": {
            "200": {"description": "Healthy"}, "503": {"description": "A component failed"}}}}}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "clgwd onboarding API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
            },
        },
    }


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    public = route.path in PUBLIC_PATHS
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.method.lower()}_{route.path[8:].replace('/', '_')}",
        "responses": _responses(route),
    }
    if route.router_methods:
        op["description"] = "Router methods: " + ", ".join(route.router_methods)
    if public:
        op["security"] = []
    elif route.method in UNSAFE_METHODS:
        op["security"] = [{"session": [], "csrf": []}]
    else:
        op["security"] = [{"session": []}]
    if route.body is not None:
        schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[route.body.__name__] = schema
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}}}
    if route.query:
        op["parameters"] = [{"name": n, "in": "query", "required": False, "schema": s}
                            for n, s in route.query]
    return op


def _responses(route: Route) -> dict[str, Any]:
    ok = {"description": "OK", "content": {route.content: {}}}
    out: dict[str, Any] = {str(route.ok_status): ok}
    for code, text in _ERROR_CODES.items():
        if code == "501" and not route.router_methods:
            continue
        out[code] = {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    return out
