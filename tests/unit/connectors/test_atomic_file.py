"""Files written whole: private, never half written, never replacing on create."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from connectors.atomic_file import create_file, replace_file


def test_replace_file_writes_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("old")
    path.chmod(0o644)
    replace_file(path, "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_replace_keeps_the_old_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        replace_file(path, "bad \udcff surrogate")  # fails while writing the temporary file
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.toml"]


def test_create_file_never_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    assert create_file(path, "first")
    assert not create_file(path, "second")
    assert path.read_text() == "first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.toml"]
