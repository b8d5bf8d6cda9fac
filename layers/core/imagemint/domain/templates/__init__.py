"""Content templates (``GET /api/content/templates``), one JSON file each beside this module."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from imagemint.errors import NotFound

_DIR = Path(__file__).parent


@lru_cache(maxsize=1)
def all_templates() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out[data["id"]] = data
    return out


def get_template(template_id: str) -> dict[str, Any]:
    template = all_templates().get(template_id)
    if template is None:
        raise NotFound("Template not found")
    return template


def style_suffix(template: dict[str, Any]) -> str:
    """The template's style rules as text appended to the prompt."""
    rules = template.get("image", {}).get("style_rules") or {}
    parts = []
    for section, entries in rules.items():
        items = "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in entries.items())
        parts.append(f"{section} — {items}")
    return (" Style: " + ". ".join(parts) + ".") if parts else ""
