"""The two built-in test splits: refusal-test (training answer styles) and refusal-test-ood (template-disjoint)."""

import re
import subprocess
import sys
from pathlib import Path

from steerscale.core.data import load_dataset

ROOT = Path(__file__).resolve().parents[2]
_WORD = re.compile(r"[a-z0-9']+")


def _answers(items):
    out = []
    for it in items:
        req = it.question.split("\n\nChoices:")[0]
        texts = dict(re.findall(r"\(([A-Z])\) (.+)", it.question))
        out.append((texts[it.matching], texts[it.not_matching], req))
    return out


def test_ood_split_shares_requests_but_no_answer_with_training():
    train, test, ood = (_answers(load_dataset(n)) for n in ("refusal-train", "refusal-test", "refusal-test-ood"))
    assert sorted(r for _, _, r in ood) == sorted(r for _, _, r in test) and len(ood) == 75
    train_answers = {a for r, c, _ in train for a in (r, c)}
    assert sum(r in train_answers for r, _, _ in test) >= 20  # the in-distribution split reuses training refusals
    assert not any(a in train_answers for r, c, _ in ood for a in (r, c))
    # whole answer styles differ: the short opening of every OOD answer never opens a training answer
    opening = lambda t: " ".join(_WORD.findall(t.lower())[:3])
    train_openings = {opening(a) for a in train_answers}
    assert not {opening(a) for r, c, _ in ood for a in (r, c)} & train_openings


def test_generator_reproduces_the_files_and_checks_disjointness(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_builtin_data.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, text=True)
    data = ROOT / "src" / "steerscale" / "builtin"
    for name in ("refusal_train.json", "refusal_test.json", "refusal_test_ood.json", "README.md"):
        assert (tmp_path / name).read_text() == (data / name).read_text(), name
