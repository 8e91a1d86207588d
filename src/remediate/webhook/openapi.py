"""The OpenAPI document of the HTTP interface, built from the payload models so the two
cannot drift apart; schemathesis fuzzes the receiver from it."""

from __future__ import annotations

from typing import Any

from remediate import __version__


def _error() -> dict[str, Any]:
    return {
        "description": "error with its reason",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
                    "required": ["error"],
                }
            }
        },
    }


def document() -> dict[str, Any]:
    from remediate.webhook.models import WebhookPayload

    schema = WebhookPayload.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    components["WebhookPayload"] = schema
    result = {
        "type": "object",
        "properties": {
            "alert": {"type": "string"},
            "action": {"type": "string", "enum": ["executed", "blocked", "escalate", "recorded"]},
            "playbook": {"type": ["string", "null"]},
            "reason": {"type": "string"},
            "decision_id": {"type": "integer"},
            "result": {"type": ["string", "null"]},
            "execution_id": {"type": ["integer", "null"]},
            "approval_id": {"type": ["integer", "null"]},
        },
        "required": ["alert", "action", "reason", "decision_id"],
    }
    components["WebhookResponse"] = {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["processed"]},
            "alerts_received": {"type": "integer"},
            "results": {"type": "array", "items": result},
        },
        "required": ["status", "alerts_received", "results"],
    }
    security: list[dict[str, list[str]]] = [{"bearer": []}, {"query": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "remediate", "version": __version__},
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "query": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
        "paths": {
            "/webhook": {
                "post": {
                    "summary": "Receive an Alertmanager v4 notification",
                    "security": security,
                    "parameters": [
                        {
                            "name": "wait",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "number", "minimum": 0, "maximum": 300},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/WebhookPayload"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "one decision per alert",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/WebhookResponse"}
                                }
                            },
                        },
                        "400": _error(),
                        "401": _error(),
                        "413": _error(),
                        "503": _error(),
                    },
                }
            },
            "/decisions": {
                "get": {
                    "summary": "Recent decisions, newest first",
                    "security": security,
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        }
                    ],
                    "responses": {"200": {"description": "decisions"}, "401": _error()},
                }
            },
            "/decisions/{id}": {
                "get": {
                    "summary": "One decision",
                    "security": security,
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "the decision"},
                        "401": _error(),
                        "404": _error(),
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Store, pause, breakers, queue depth",
                    "responses": {"200": {"description": "healthy"}, "503": _error()},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text format 0.0.4"}},
                }
            },
        },
    }
