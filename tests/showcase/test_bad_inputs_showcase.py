"""Bad inputs showcase/ refuses: its TOML values.

The catalogue's cases are those whose error this stage's code raises (the innermost steerscale frame); each exits 2
with one line naming the file/field/value, and each has a row in docs/errors.md naming this file. The shared inputs
and builders are in tests/badinput.py.
"""

from __future__ import annotations

import pytest

from badinput import Ctx, base, check_documented, run_catalogue  # noqa: F401 (base: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


# (id, build(ctx) -> argv, expected fragment of the one-line message)
CATALOGUE = [
    ("toml-showcase-multiplier-huge", lambda c: c.toml("[showcase]\ndose_multipliers = [0, 1e31]\n"),
     "showcase dose_multipliers [0, 1e+31]: expected a list of finite numbers within +-1e+30"),
]


@pytest.mark.parametrize("build,fragment", [pytest.param(b, f, id=i) for i, b, f in CATALOGUE])
def test_catalogue(base, tmp_path, monkeypatch, capsys, build, fragment):
    run_catalogue(Ctx(base, tmp_path, monkeypatch), capsys, build, fragment, __file__)


def test_catalogue_is_documented():
    check_documented(CATALOGUE, __file__)
