"""The key-encryption key: production refuses to invent one; elsewhere it is a 0600 file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vitalbridge.crypto.sealing import KEY_FILE_NAME, load_kek, sealer_from_settings
from vitalbridge.errors import ConfigurationError
from vitalbridge.settings import Environment, Settings


def test_production_without_a_kek_refuses_to_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ecw_environment=Environment.production, secret_key=None)
    with pytest.raises(ConfigurationError, match="VB_SECRET_KEY"):
        load_kek(settings)
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_production_with_a_kek_works(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ecw_environment=Environment.production, secret_key="from-the-vault")  # type: ignore[arg-type]
    sealer = sealer_from_settings(settings)
    assert sealer.open(sealer.seal(b"x", "p"), "p") == b"x"
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_generated_key_file_is_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key=None)
    first = load_kek(settings)
    path = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) == 32
    assert load_kek(settings) == first
    sealed = sealer_from_settings(settings).seal(b"secret", "p")
    assert sealer_from_settings(settings).open(sealed, "p") == b"secret"


def test_damaged_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_bytes(b"short")
    with pytest.raises(ConfigurationError, match="damaged"):
        load_kek(Settings(data_dir=tmp_path, secret_key=None))
