"""The package's public surface and its style gates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import correlator

ROOT = Path(__file__).resolve().parents[1]


def test_all_names_exist_and_nothing_private_is_exported() -> None:
    for name in correlator.__all__:
        assert hasattr(correlator, name), name
        assert not name.startswith("_") or name == "__version__"
    assert sorted(correlator.__all__) == correlator.__all__


def _ruff() -> list[str]:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    return [found]


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(args: list[str]) -> None:
    result = subprocess.run(
        [*_ruff(), *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
