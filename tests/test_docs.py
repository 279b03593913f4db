"""Docs stay true: every setting is documented, every CLI group has help, README names the commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tools.gen_config_docs import env_names
from vitalbridge.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_in_the_configuration_reference() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = [env_names(n)[0] for n in Settings.model_fields if f"`{env_names(n)[0]}`" not in doc]
    assert not missing, f"run `.venv/bin/python tools/gen_config_docs.py`; undocumented: {missing}"


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
