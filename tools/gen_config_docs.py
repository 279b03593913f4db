"""Regenerate the settings table of docs/configuration.md from ``vitalbridge.settings.Settings``.

Run ``.venv/bin/python tools/gen_config_docs.py``; the comment lines above each field in
settings.py become its description, so the reference cannot drift from the code.
"""

from __future__ import annotations

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
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# ").strip())
            continue
        match = re.match(r"^    ([a-z_][a-z0-9_]*)\s*:", line)
        if match:
            inline = line.split("#", 1)[1].strip() if "#" in line and "Field(" not in line.split("#", 1)[1] else ""
            found[match.group(1)] = " ".join([*pending, inline]).strip()
        pending = [] if not stripped.startswith("#") else pending
    return found


def default_of(name: str) -> str:
    field = Settings.model_fields[name]
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if value is None or value == "":
        return "(unset)"
    text = getattr(value, "value", value)
    return f"`{text}`"


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
