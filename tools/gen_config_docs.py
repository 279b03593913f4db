"""Regenerate the settings table of docs/configuration.md from ``vitalbridge.settings.Settings``.

Run ``.venv/bin/python tools/gen_config_docs.py``; the comment lines above each field in
settings.py become its description, so the reference cannot drift from the code.
"""

from __future__ import annotations

import enum
import json
import re
from pathlib import Path

from vitalbridge.settings import Settings, env_names

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def comments() -> dict[str, str]:
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in (ROOT / "src/vitalbridge/settings.py").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("# =="):
            continue  # a section heading, not a field's description
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# ").strip())
            continue
        match = re.match(r"^    ([a-z_][a-z0-9_]*)\s*:", line)
        if match:
            inline = line.split("#", 1)[1].strip() if "#" in line and "Field(" not in line.split("#", 1)[1] else ""
            found[match.group(1)] = " ".join([*pending, inline]).strip()
        pending = [] if not stripped.startswith("#") else pending
    return found


def env_text(value: object) -> str | None:
    """A default written as the variable would be set to it (it must parse back to the default);
    None for an empty default."""
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)  # comma-separated lists (VB_CORS_ORIGINS)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def default_of(name: str) -> str:
    field = Settings.model_fields[name]
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    text = env_text(value)
    return "(unset)" if text is None else f"`{text}`"


def table() -> str:
    notes = comments()
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name in Settings.model_fields:
        names = " / ".join(f"`{n}`" for n in env_names(name))
        meaning = notes.get(name, "").replace("|", "\\|") or "—"
        rows.append(f"| {names} | {default_of(name)} | {meaning} |")
    return "\n".join(rows)


def main() -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + table() + "\n" + text[end:])


if __name__ == "__main__":
    main()
