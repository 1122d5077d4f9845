"""The build caches (wheels, .deb files): filled once, and a failed fill leaves nothing that
looks done."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtr_cache_check.reference.build_inputs import cached_dir as _cached_dir


def test_a_failed_fill_leaves_nothing(tmp_path: Path) -> None:
    def fill(directory: Path) -> None:
        (directory / "half.whl").write_text("partial")
        raise RuntimeError("download broke off")

    with pytest.raises(RuntimeError, match="broke off"):
        _cached_dir(tmp_path, "key", fill)
    assert list(tmp_path.iterdir()) == []


def test_a_complete_fill_is_reused(tmp_path: Path) -> None:
    calls = []

    def fill(directory: Path) -> None:
        calls.append(directory)
        (directory / "pip.whl").write_text("wheel")

    first, second = _cached_dir(tmp_path, "key", fill), _cached_dir(tmp_path, "key", fill)
    assert first == second == tmp_path / "key" and len(calls) == 1
    assert (first / "pip.whl").read_text() == "wheel" and (first / ".complete").is_file()
