"""One-line descriptions of pydantic validation errors, shared by every input model."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

# Who asked (MQTT requested_by, the open page's operator name), as it goes into the audit log and the saved prompt
# file's comment: any characters, spaces included ("Anna K", "MES line 3"), but no line breaks, tabs or other control
# characters, which could forge log lines or inject YAML keys (the prompt manager also makes any source printable
# before it writes it). '' is allowed: unknown.
REQUESTED_BY_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]{0,128}$"


def describe(err: ValidationError) -> str:
    """``'where': what`` for the most telling error (an unknown key explains a missing one)."""
    errors = err.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    hint = " (unknown key: check its spelling)" if first["type"] == "extra_forbidden" else ""
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"'{where}': {first['msg']}{hint}{more}"


def repeated(names: list[str]) -> list[str]:
    """Names that occur more than once (for "must be unique" validators)."""
    return sorted({n for n in names if names.count(n) > 1})


def inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON Schema with its ``$defs`` put in place of their ``$ref`` s (none are recursive), so
    that it can be embedded in another schema."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return dict(walk(schema))
