"""``GET /openapi.json``: the OpenAPI 3.1 document of the admin API, built from its route table."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.http.api_routes import TABLE

_INVESTIGATE = {
    "type": "object", "additionalProperties": False,
    "description": "exactly one of ticket_id, alert_id, text",
    "properties": {
        "ticket_id": {"type": "string", "maxLength": 4000, "examples": ["SCHED-45895"]},
        "alert_id": {"type": "string", "maxLength": 4000},
        "text": {"type": "string", "maxLength": 4000},
        "mode": {"enum": ["fast", "balanced", "deep"]},
        "priority": {"enum": ["P1", "P2", "P3"]},
        "domain": {"type": "string", "minLength": 1, "maxLength": 200},
        "publish": {"type": "object", "additionalProperties": False, "properties": {
            "jira": {"type": "boolean"}, "slack": {"type": "string", "minLength": 1}}},
        "callback_url": {"type": "string", "format": "uri",
                         "description": "http(s); loopback/private/link-local refused unless allowed"},
    },
}
_ACCEPTED = {"type": "object", "required": ["investigation_id", "status", "status_url"], "properties": {
    "investigation_id": {"type": "string"}, "status": {"type": "string"}, "status_url": {"type": "string"},
    "estimated_duration_minutes": {"type": "integer"}}}
_OBJECT = {"type": "object"}
_PROBLEM = {"type": "object", "required": ["title", "status", "detail"], "properties": {
    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
    "detail": {"type": "string"}}}

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_SINCE = {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}}
_UNTIL = {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}}

#: handler name -> (summary, parameters, request body schema or None, success code, success schema)
_DETAILS: dict[str, tuple[str, list[dict[str, Any]], dict[str, Any] | None, str, dict[str, Any]]] = {
    "start_investigation": ("Start an investigation (Idempotency-Key honoured)",
                            [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 150}}],
                            _INVESTIGATE, "202", _ACCEPTED),
    "start_batch": ("Start up to 100 investigations", [],
                    {"type": "object", "required": ["investigations"], "properties": {
                        "investigations": {"type": "array", "minItems": 1, "maxItems": 100, "items": _INVESTIGATE}}},
                    "202", {"type": "object", "properties": {"investigations": {"type": "array", "items": _ACCEPTED}}}),
    "list_investigations": ("List investigations, newest first (keyset pages)", [
        {"name": "status", "in": "query", "schema": {"enum": ["QUEUED", "RUNNING", "COMPLETE", "FAILED", "CANCELLED"]}},
        {"name": "domain", "in": "query", "schema": {"type": "string"}}, _SINCE, _UNTIL,
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}}], None, "200", _OBJECT),
    "get_investigation": ("Status: phase, phase number, hypothesis iteration, agents, elapsed, tokens", [_ID],
                          None, "200", _OBJECT),
    "cancel_investigation": ("Cancel (queued: at once; running: at the next phase boundary)", [_ID], None, "202",
                             _OBJECT),
    "get_report": ("The report as JSON, Markdown or Jira markup (Accept or ?format=)", [_ID, {
        "name": "format", "in": "query", "schema": {"enum": ["json", "markdown", "jira"]}}], None, "200", _OBJECT),
    "get_traces": ("Phases, agent runs, tool calls and model tokens", [_ID], None, "200", _OBJECT),
    "list_domains": ("Configured domains", [], None, "200", _OBJECT),
    "upsert_domain": ("Create or update a domain's configuration", [],
                      {"type": "object", "required": ["domain"], "properties": {
                          "domain": {"type": "string", "minLength": 1}, "config": {"type": "object"},
                          "merge": {"type": "boolean"}}}, "200", _OBJECT),
    "get_domain": ("A domain's configuration", [{"name": "repo", "in": "path", "required": True,
                                                 "schema": {"type": "string"}}], None, "200", _OBJECT),
    "cost_summary": ("Cost of a period (default: this calendar month, UTC)", [_SINCE, _UNTIL], None, "200", _OBJECT),
    "cost_investigation": ("One investigation's cost breakdown", [_ID], None, "200", _OBJECT),
    "budgets_show": ("This month's global and per-domain budgets, thresholds and approvals", [], None, "200",
                     _OBJECT),
    "budgets_approve": ("Approve spending past a monthly budget (usd more, or the stop lifted for the month)", [],
                        {"type": "object", "required": ["scope"], "additionalProperties": False, "properties": {
                            "scope": {"enum": ["global", "domain"]},
                            "domain": {"type": "string", "minLength": 1, "maxLength": 200},
                            "usd": {"type": "number", "exclusiveMinimum": 0},
                            "note": {"type": "string", "maxLength": 2000}}}, "200", _OBJECT),
    "direct_query": ("Ask one capability through the MCP gateway", [{
        "name": "capability", "in": "path", "required": True, "schema": {"type": "string"}}],
        {"type": "object", "properties": {"args": {"type": "object"}}}, "200", _OBJECT),
}


def document() -> dict[str, Any]:
    """The OpenAPI document (every route of :data:`bot.http.api_routes.TABLE`)."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, role, name in TABLE:
        summary, params, body, code, schema = _DETAILS[name]
        op: dict[str, Any] = {
            "operationId": name, "summary": summary, "description": f"Needs the {role} role (or higher).",
            "parameters": params,
            "responses": {code: {"description": "OK", "content": {"application/json": {"schema": schema}}},
                          **{c: {"$ref": "#/components/responses/Problem"} for c in
                             ("400", "401", "403", "404", "409", "413", "422", "429")}},
            "security": [{"apiKey": []}, {"bearer": []}],
        }
        if body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        paths.setdefault(path.replace(":path}", "}"), {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Production Master admin API", "version": "1",
                 "description": "Roles viewer < operator < admin; see docs/api.md."},
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT or API key"}},
            "responses": {"Problem": {"description": "RFC 9457 problem", "content": {
                "application/problem+json": {"schema": _PROBLEM}}}},
        },
    }


def routes() -> list[Route]:
    """``GET /openapi.json`` (no credentials needed: it describes, it does not answer)."""
    doc = document()

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(doc)

    return [Route("/openapi.json", openapi, methods=["GET"])]
