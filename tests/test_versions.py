"""The transformers range pyproject.toml declares is the one CI tests, and the installed release is in it."""

import re
from pathlib import Path

import transformers

ROOT = Path(__file__).resolve().parents[1]


def _key(v: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def test_declared_range_matches_the_oldest_tested_and_holds_the_installed_release():
    spec = re.search(r'"transformers>=([\d.]+),<([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert spec, "pyproject.toml: expected transformers>=OLDEST,<NEXT"
    oldest = re.search(r"^OLDEST_TRANSFORMERS := ([\d.]+)$", (ROOT / "Makefile").read_text(), re.M)
    assert oldest and oldest.group(1) == spec.group(1), "Makefile OLDEST_TRANSFORMERS != pyproject's lower bound"
    assert _key(spec.group(1)) <= _key(transformers.__version__) < _key(spec.group(2))


def test_package_version_matches_pyproject():
    from steerscale._version import __version__

    declared = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared and declared.group(1) == __version__
