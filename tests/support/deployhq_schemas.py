"""The response schemas the tests hold the fake DeployHQ to, derived from DeployHQ's own API
description: the OpenAPI 3.1 document DeployHQ serves at https://api.deployhq.com/docs.json.

``tests/data/deployhq_schemas.json`` is what ``derive`` makes of that document: the answers of
the operations the bot calls (below), with every ``$ref`` resolved, and then changed where the
live API is known to differ from the description (``LIVE``, as DeployHQ's official CLI records
it). A test re-derives the file from the description, when the description is at hand, so the
file cannot drift from it; another checks each kind of answer the fake gives against it.

Run ``python -m tests.support.deployhq_schemas path/to/deployhq-openapi.json`` to write it again.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent.parent / "data" / "deployhq_schemas.json"

# (name in the file, method, path in the description, statuses)
OPERATIONS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("projects", "get", "/projects", ("200", "401", "403")),
    ("deployment", "get", "/projects/{project_id}/deployments/{id}", ("200", "404", "401", "403")),
    ("deployments", "get", "/projects/{project_id}/deployments", ("200", "404")),
    ("create", "post", "/projects/{project_id}/deployments", ("201", "422")),
    ("retry", "post", "/projects/{project_id}/deployments/{id}/retry", ("200", "404", "422")),
    ("rollback", "post", "/projects/{project_id}/deployments/{id}/rollback", ("200", "422")),
    ("abort", "post", "/projects/{project_id}/deployments/{id}/abort", ("200",)),
    (
        "logs",
        "get",
        "/projects/{project_id}/deployments/{deployment_id}/steps/{step_id}/logs",
        ("200",),
    ),
    ("latest_revision", "get", "/projects/{project_id}/repository/latest_revision", ("200",)),
    ("recent_commits", "get", "/projects/{project_id}/repository/recent_commits", ("200",)),
    ("ai_overview", "post", "/projects/{id}/ai_deployment_overview", ("200", "400", "422")),
    ("servers", "get", "/projects/{project_id}/servers", ("200",)),
    ("server_groups", "get", "/projects/{project_id}/server_groups", ("200",)),
    ("auto_deployments", "get", "/projects/{project_id}/auto_deployments", ("200",)),
    ("set_auto_deployments", "post", "/projects/{project_id}/auto_deployments", ("200", "422")),
    ("insights", "get", "/projects/{id}/insights", ("200",)),
]

_INTEGER_OR_STRING = {"type": ["integer", "string", "null"]}
# "2026-01-01T12:00:30.000+01:00": the account's offset, and milliseconds.
_DHQ_TIME = {"type": ["string", "null"], "pattern": r"T\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$"}

# Where the live API differs from the description: (schema name, JSON path of the property, the
# schema that replaces it, why). Paths use "[]" for an array's items.
LIVE: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "Deployment",
        "steps[].server",
        {"type": ["integer", "null"]},
        "a step's server is the integer id of one of servers[] (the CLI's notes)",
    ),
    (
        "Deployment",
        "steps[].total_items",
        _INTEGER_OR_STRING,
        "an integer on the live API (the CLI's notes)",
    ),
    (
        "Deployment",
        "steps[].completed_items",
        _INTEGER_OR_STRING,
        "an integer on the live API (the CLI's notes)",
    ),
    (
        "Deployment",
        "servers[].port",
        _INTEGER_OR_STRING,
        "a string or an integer (the CLI's notes)",
    ),
    (
        "Deployment",
        "servers[].agent",
        {"type": ["object", "string", "null"]},
        "an object when set (the CLI's notes)",
    ),
    (
        "Deployment",
        "timestamps.duration",
        {"type": ["number", "null"]},
        "null until the deployment finishes",
    ),
    (
        "Deployment",
        "timestamps.started_at",
        _DHQ_TIME,
        "null until it starts; a retry clears it (DeployHQ's retry page)",
    ),
    (
        "Deployment",
        "timestamps.completed_at",
        _DHQ_TIME,
        "null until it finishes; a retry clears it (DeployHQ's retry page)",
    ),
    (
        "Deployment",
        "timestamps.queued_at",
        _DHQ_TIME,
        "with the account's offset and milliseconds (the CLI's notes)",
    ),
    (
        "Deployment",
        "files",
        {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"changed": {"type": "array"}, "removed": {"type": "array"}},
                "additionalProperties": False,
            },
        },
        "a preview's files are keyed by each server's identifier (the description gives one "
        "example identifier as the only property)",
    ),
    *(
        (
            "PeriodServersSummaryObject",
            where,
            {"type": "number"},
            'the description says "float", which is no JSON Schema type',
        )
        for where in (
            "servers[].reliability",
            "servers[].deploys_per_week",
            "summary.total_deploys.delta",
            "summary.success_rate.value",
            "summary.success_rate.delta",
            "summary.avg_duration.delta",
        )
    ),
    (
        "NamePermalinkIdentifierList",
        "[].repository",
        {"type": ["object", "null"]},
        'the description says "hash", which is no JSON Schema type',
    ),
    (
        "FieldWithErrorObject",
        "",
        {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
            },
        },
        'validation errors are {"field": ["msg", ...]}, whole-object ones under "base" '
        '(the description names a placeholder "field_with_error")',
    ),
]


def derive(description: dict[str, Any]) -> dict[str, Any]:
    """The schemas of ``OPERATIONS``' answers, resolved, with ``LIVE`` applied."""
    components = description["components"]

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                kind, key = node["$ref"].split("/")[-2:]
                return resolve(copy.deepcopy(components[kind][key]))
            node = {k: resolve(v) for k, v in node.items()}
            for schema, where, replacement, _ in LIVE:  # a deployment within a list, say
                if node.get("title") == schema:
                    node = _replace(node, where, replacement)
            return node
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    derived: dict[str, Any] = {
        "source": "DeployHQ's API description (OpenAPI "
        + str(description.get("openapi", "?"))
        + ", https://api.deployhq.com/docs.json), the answers of the operations below",
        "live_api_differences": [
            {"schema": schema, "where": where, "why": why} for schema, where, _, why in LIVE
        ],
        "answers": {},
        "schemas": {},
    }
    for name, method, path, statuses in OPERATIONS:
        responses = description["paths"][path][method]["responses"]
        for status in statuses:
            response = responses[status]
            if "$ref" in response:
                response = components["responses"][response["$ref"].split("/")[-1]]
            ref = response["content"]["application/json"]["schema"]
            schema_name = ref.get("$ref", "").split("/")[-1]
            if schema_name not in derived["schemas"]:
                schema = resolve(copy.deepcopy(ref))
                for live_schema, where, replacement, _ in LIVE:
                    if schema_name == live_schema and schema.get("title") != live_schema:
                        schema = _replace(schema, where, replacement)
                derived["schemas"][schema_name] = schema
            derived["answers"][f"{name} {status}"] = {
                "operation": f"{method.upper()} {path}",
                "schema": schema_name,
            }
    return derived


def _replace(schema: dict[str, Any], where: str, replacement: dict[str, Any]) -> dict[str, Any]:
    if not where:
        return copy.deepcopy(replacement)
    schema = copy.deepcopy(schema)
    node = schema
    parts = where.replace("[]", ".[]").strip(".").split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "[]":
            if "items" not in node:
                return schema
            if last:
                node["items"] = copy.deepcopy(replacement)
            node = node["items"]
            continue
        properties = node.get("properties")
        if not isinstance(properties, dict):
            return schema
        if last:
            properties[part] = copy.deepcopy(replacement)
        elif part in properties:
            node = properties[part]
        else:
            return schema
    return schema


def load() -> dict[str, Any]:
    return json.loads(SCHEMAS.read_text())


def schema_of(answer: str) -> dict[str, Any]:
    """The schema of one answer, as ``"deployment 200"`` names it."""
    derived = load()
    return derived["schemas"][derived["answers"][answer]["schema"]]


if __name__ == "__main__":
    source = json.loads(Path(sys.argv[1]).read_text())
    SCHEMAS.parent.mkdir(exist_ok=True)
    SCHEMAS.write_text(json.dumps(derive(source), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SCHEMAS}")
