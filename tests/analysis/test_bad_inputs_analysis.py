"""Bad inputs analysis/ refuses: items.csv scores that are not probabilities.

The catalogue's cases are those whose error this stage's code raises (the innermost steerscale frame); each exits 2
with one line naming the file/field/value, and each has a row in docs/errors.md naming this file. The shared inputs
and builders are in tests/badinput.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from badinput import base, catalogue_tests  # noqa: F401 (base: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


# (id, build(ctx) -> argv, expected fragment of the one-line message)
CATALOGUE = [
    ("report-score-above-one", lambda c: ["report", c.report_folder(lambda o: _edit_scores(o, "7.5"))],
     "items.csv: row 2: score 7.5 is not a probability in [0, 1]"),
    ("report-score-negative", lambda c: ["report", c.report_folder(lambda o: _edit_scores(o, "-3"))],
     "items.csv: row 2: score -3.0 is not a probability in [0, 1]"),
    ("report-inf-score-at-zero", lambda c: ["report", c.report_folder(lambda o: _edit_scores(o, "inf", True))],
     "score inf is not a probability in [0, 1]"),
]


test_catalogue, test_catalogue_is_documented = catalogue_tests(CATALOGUE, __file__)


def _edit_scores(out: Path, value: str, at_zero: bool = False) -> None:
    import csv

    with open(out / "m" / "items.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if float(r["multiplier"]) == 0.0 or not at_zero:
            r["score"] = value
            break
    with open(out / "m" / "items.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
