"""`{name}` placeholders in command-playbook argv: whole validated values, never shell text."""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(text: str) -> list[str]:
    return _PLACEHOLDER.findall(text.replace("{{", "").replace("}}", ""))


def render(text: str, values: Mapping[str, object]) -> str:
    """Replace each `{name}` with its value; `{{` and `}}` stand for literal braces."""
    out = []
    for piece in re.split(r"(\{\{|\}\})", text):
        if piece == "{{":
            out.append("{")
        elif piece == "}}":
            out.append("}")
        else:
            out.append(_PLACEHOLDER.sub(lambda m: _text(values[m.group(1)]), piece))
    return "".join(out)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
