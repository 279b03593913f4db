"""Docs stay true: every setting is documented with a description and a default that parses,
every command that docs or help texts name exists, README names the two commands."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from tools.gen_config_docs import BEGIN, END, comments, table
from vitalbridge.cli import app
from vitalbridge.settings import Settings, env_names

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| (?P<names>`[^`]+`(?: / `[^`]+`)*) \| (?P<default>\(unset\)|`[^`]*`) \| (?P<meaning>.*) \|$")


def settings_rows() -> dict[str, tuple[str | None, str]]:
    """First variable name -> (printed default or None for unset, meaning), from the doc's table."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    rows: dict[str, tuple[str | None, str]] = {}
    for line in doc[doc.index(BEGIN) : doc.index(END)].splitlines():
        match = ROW.match(line)
        if match:
            first = re.findall(r"`([^`]+)`", match["names"])[0]
            default = None if match["default"] == "(unset)" else match["default"].strip("`")
            rows[first] = (default, match["meaning"])
    return rows


def test_every_setting_is_a_row_of_the_configuration_reference() -> None:
    rows = settings_rows()
    names = {env_names(n)[0] for n in Settings.model_fields}
    assert not names - rows.keys(), f"run `.venv/bin/python tools/gen_config_docs.py`; missing: {names - rows.keys()}"
    assert not rows.keys() - names, f"documented settings that do not exist: {rows.keys() - names}"
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert table() in doc, "docs/configuration.md is stale: run `.venv/bin/python tools/gen_config_docs.py`"


def test_every_setting_has_a_description() -> None:
    notes = comments()
    missing = [env_names(n)[0] for n in Settings.model_fields if not notes.get(n)]
    assert not missing, f"add a comment line above these fields in settings.py: {missing}"
    for name, (_default, meaning) in settings_rows().items():
        assert meaning not in ("", "—"), name


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_printed_default_parses_back(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting a variable to the default the reference prints gives the default value."""
    monkeypatch.chdir(tmp_path)  # no .env
    for var in [v for v in __import__("os").environ if v.startswith(("VB_", "ECW_"))]:
        monkeypatch.delenv(var)
    variable = env_names(name)[0]
    printed, _meaning = settings_rows()[variable]
    field = Settings.model_fields[name]
    default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if printed is None:
        assert default in (None, "", [], {}), f"{variable} prints (unset) but defaults to {default!r}"
        return
    monkeypatch.setenv(variable, printed)
    assert getattr(Settings(), name) == default, f"{variable}={printed} does not parse to the default"


# --- commands named in docs and help texts exist ------------------------------------------------

MENTION = re.compile(r"\bvitalbridge((?:[ \t]+[a-z][a-z0-9-]*(?:\|[a-z][a-z0-9-]*)*)+)")


def _tree() -> Any:
    return typer.main.get_command(app)


def _walk(command: Any, path: str = "vitalbridge") -> Iterator[tuple[str, Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, f"{path} {name}")


def help_texts() -> Iterator[tuple[str, str]]:
    """Code spans of every command's and option's help (commands to type are in backticks there too)."""
    for path, command in _walk(_tree()):
        texts = [command.help or "", command.short_help or ""]
        texts += [str(getattr(param, "help", "") or "") for param in command.params]
        for text in texts:
            for span in re.findall(r"`([^`\n]+)`", text):
                yield f"help of `{path}`", span


def doc_code() -> Iterator[tuple[str, str]]:
    """Code spans and fenced blocks of README.md and docs/: where commands are written to be typed."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text()
        for block in re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S):
            yield str(path.relative_to(ROOT)), block
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        for span in re.findall(r"`([^`\n]+)`", prose):
            yield str(path.relative_to(ROOT)), span


def unknown_commands(text: str) -> list[str]:
    """Each `vitalbridge a b …` in ``text`` whose words leave the command tree before a leaf."""
    bad = []
    for match in MENTION.finditer(text):
        node = _tree()
        for word in match.group(1).split():
            subcommands = getattr(node, "commands", None)
            if subcommands is None:
                break  # a leaf: the rest are its arguments
            choices = word.split("|")
            missing = [c for c in choices if c not in subcommands]
            if missing:
                bad.append(f"vitalbridge{match.group(1)}".strip())
                break
            if len(choices) > 1:
                break
            node = subcommands[word]
    return bad


def test_mention_check_finds_what_does_not_exist() -> None:
    assert unknown_commands("run `vitalbridge deliveries inspect ID` then vitalbridge notify send") == [
        "vitalbridge deliveries inspect",
        "vitalbridge notify send",
    ]
    assert unknown_commands("vitalbridge keys generate|rotate|nope") == ["vitalbridge keys generate|rotate|nope"]
    assert unknown_commands("vitalbridge deliveries list|replay; vitalbridge orgs create Main Street") == []


def test_every_command_named_in_docs_exists() -> None:
    bad = [(where, m) for where, text in doc_code() for m in unknown_commands(text)]
    assert not bad, bad


def test_every_command_named_in_help_texts_exists() -> None:
    bad = [(where, m) for where, text in help_texts() for m in unknown_commands(text)]
    assert not bad, bad


def test_group_help_lists_only_its_commands() -> None:
    """A group's help written as "Topic: a, b, c." lists its own commands (first word of each)."""
    bad = []
    for path, command in _walk(_tree()):
        subcommands = getattr(command, "commands", None)
        help_line = (command.help or "").strip().split("\n")[0]
        if not subcommands or path == "vitalbridge" or ":" not in help_line:
            continue
        for item in help_line.split(":", 1)[1].rstrip(".").split(","):
            first = item.split()[0] if item.split() else ""
            if first not in subcommands:
                bad.append(f"{path}: {first!r}")
    assert not bad, bad


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    assert "make run" in head
    assert "make test" in head


def test_cli_help_lists_the_command_groups() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vitalbridge", "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for command in ("serve", "migrate", "sandbox", "orgs", "tokens", "practices", "keys", "audit", "worker"):
        assert command in out, command


def test_every_test_named_in_the_threat_table_exists() -> None:
    """docs/security.md's threat table names the test that performs each attack; a renamed or
    deleted test must not leave a row pointing at nothing."""
    text = (ROOT / "docs" / "security.md").read_text()
    table = text.split("## Threats and controls", 1)[1]
    missing: list[str] = []
    rows = [line for line in table.splitlines() if line.startswith("| ") and "::" in line]
    assert len(rows) >= 11, "one row per attack of the security review at least"
    for row in rows:
        last_file: str | None = None
        for path, name in re.findall(r"`(tests/[\w/]+\.py)?::(test_\w+)`", row):
            last_file = path or last_file
            assert last_file is not None, row
            source = (ROOT / last_file).read_text() if (ROOT / last_file).exists() else ""
            if f"def {name}(" not in source:
                missing.append(f"{last_file}::{name}")
    assert not missing, missing
