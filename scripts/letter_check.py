"""Letter figures of the embedded SmolLM2-135M-Instruct's refusal vectors, and two exactness checks.

    PYTHONPATH=src python scripts/letter_check.py                 # the demo's training set (default.toml)
    PYTHONPATH=src python scripts/letter_check.py --first 200     # the first 200 pairs (what the demo used before)
    ... --main /work/main                                         # also compare with the unchanged code's vectors

Training items: ``refusal-train`` with the demo's ``train_limit = 200`` drawn as the demo draws it now
(``load_dataset(limit=200, seed=0)``: seeded, letter-stratified), or with ``--first N`` the first N pairs
(letter-imbalanced: 97 A / 103 B for N = 200). Template ``chat``, batch size 8, float32, as the demo.

Prints per layer |l| (letter direction), |r| (letter-balanced behaviour direction), |v_none| (CAA's raw mean),
cos(v_none, l), the share of |v_none|^2 along l (cos^2), the imbalance term's share |s_bar| |l| / |v_none| and
cos(v_balanced, v_swap); then checks, recomputing everything independently from the kept per-item activations:
(i) the default (balanced) vector equals r to float rounding at every layer, (ii) v_none equals the plain
mean of the per-item differences and v_none = s_bar l + r; with ``--main DIR`` (a checkout of the code before
the letter estimators), (iii) ``steerscale train`` run there on the same items gives exactly v_none.
Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--first", type=int, default=None, help="the first N pairs instead of the demo's sample")
    ap.add_argument("--main", default=None, help="a checkout of the unchanged code (src/ inside) to compare with")
    ap.add_argument("--skip-swap", action="store_true", help="no swap-augmented vector (half the passes)")
    ap.add_argument("--work", default=None, help="folder for the activation cache (default a new temporary one); "
                    "a rerun with the same folder reuses the cached passes")
    ap.add_argument("--python", default=sys.executable, help="python to run --main's CLI with")
    a = ap.parse_args()

    import steerscale as ss
    from steerscale.core.data import letter_counts
    from steerscale.core.vectors import train_vectors

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    all_items = ss.load_dataset("refusal-train")
    if a.first:
        items, how = all_items[: a.first], f"the first {a.first} pairs of refusal-train"
    else:
        items, how = ss.load_dataset("refusal-train", limit=200, seed=0), "the demo's 200 pairs (seed 0, stratified)"
    counts = letter_counts(items)
    sbar = (counts.get("A", 0) - counts.get("B", 0)) / len(items)
    model, tok, info = ss.load_model("smollm2-135m")
    tmp = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="letter-check-"))
    kw = dict(template="chat", batch_size=8, cache_dir=tmp / "cache", progress=False, info=info)
    v_bal = train_vectors(model, tok, items, keep_activations=True, letter_balance="balanced", **kw)
    v_none = train_vectors(model, tok, items, letter_balance="none", **kw)  # same activations (cache hit)
    v_swap = None if a.skip_swap else train_vectors(model, tok, items, letter_balance="swap", **kw)

    # independent recomputation from the kept per-item activations (float64)
    from steerscale.core.activations import ActivationStats

    cache = next(p for p in (tmp / "cache").glob("activations-*.safetensors") if p.with_suffix(".shards").is_dir())
    st = ActivationStats.load(cache)
    diffs = torch.cat([(m.double() - n.double()) for m, n in st.iter_kept()])  # [items, layers, hidden]
    is_a = torch.tensor([it.matching == "A" for it in items])
    mean_a, mean_b = diffs[is_a].mean(0), diffs[~is_a].mean(0)
    r = 0.5 * (mean_a + mean_b)  # letter-balanced mean of s * (act(A) - act(B)); s * (A - B) = diff
    ell = 0.5 * (mean_a - mean_b)  # letter-balanced mean of act(A) - act(B)
    raw = diffs.mean(0)

    def cos(x, y):
        return (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1)).clamp_min(1e-30)

    vn, vb = v_none.vectors.double(), v_bal.vectors.double()
    print(f"{how}: {counts.get('A', 0)} A-matching / {counts.get('B', 0)} B-matching, s_bar = {sbar:+.3f}")
    print("| layer | |l| | |r| | |v_none| | cos(v_none, l) | share of |v_none|^2 along l | "
          "|s_bar| |l| / |v_none| | cos(v_balanced, v_swap) |")
    print("|---|---|---|---|---|---|---|---|")
    c_nl = cos(vn, ell)
    c_bs = None if v_swap is None else cos(vb, v_swap.vectors.double())
    for l in range(vn.shape[0]):
        print(f"| {l} | {ell[l].norm():.1f} | {r[l].norm():.2f} | {vn[l].norm():.2f} | {c_nl[l]:+.2f} | "
              f"{c_nl[l] ** 2:.2f} | {abs(sbar) * ell[l].norm() / vn[l].norm():.2f} | "
              f"{'n/a' if c_bs is None else f'{c_bs[l]:+.3f}'} |")
    print(f"train's summary (balanced): {_summary(v_bal)}")
    print(f"train's summary (none): {_summary(v_none)}")
    if v_swap is not None:
        print(f"train's summary (swap): {_summary(v_swap)}")

    ok = True
    rel = lambda x, y: float(((x - y).norm(dim=-1) / y.norm(dim=-1).clamp_min(1e-30)).max())  # noqa: E731
    # tolerance 1e-5 of |v|: the pass subtracts the float32 activations (|act| ~ 50-600 here) before its float64
    # sums, as the code before the letter estimators did; the recomputation here subtracts in float64
    checks = [("(i) balanced vector == r (independent, float64) at every layer", rel(vb, r), 1e-5),
              ("(ii) none vector == plain mean of per-item diffs", rel(vn, raw), 1e-5),
              ("(ii) raw mean == s_bar * l + r (float64)", rel(raw, sbar * ell + r), 1e-10)]
    for name, err, tol in checks:
        good = err <= tol
        ok &= good
        print(f"{'PASS' if good else 'FAIL'} {name}: largest relative difference {err:.2e} (tolerance {tol:g})")
    if a.main:
        data = tmp / "items.json"
        data.write_text(json.dumps([it.to_caa() for it in items]))
        out = tmp / "main.safetensors"
        env = dict(os.environ, PYTHONPATH=str(Path(a.main) / "src"))
        subprocess.run([a.python, "-m", "steerscale.cli", "train", "--data", str(data), "--out", str(out),
                        "--template", "chat", "--batch-size", "8"], cwd=a.main, env=env, check=True)
        from steerscale.core.vectors import SteeringVectors

        old = SteeringVectors.load(out).vectors
        same = torch.equal(old, v_none.vectors)
        ok &= same
        print(f"{'PASS' if same else 'FAIL'} (iii) --letter-balance none == {a.main}'s train on the same items: "
              f"{'bit-identical' if same else f'max abs difference {float((old - v_none.vectors).abs().max()):.3g}'}")
    return 0 if ok else 1


def _summary(v) -> str:
    from steerscale.core.letters import LetterFigures

    return LetterFigures.from_meta(v.meta).summary()


if __name__ == "__main__":
    sys.exit(main())
