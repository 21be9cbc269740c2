"""Screen bench: exact passes of a full layer x multiplier sweep vs the gradient screen + the top-K layers.

SmolLM2-135M-Instruct (embedded), vectors trained on built-in refusal-train, items from built-in refusal-test,
all 30 layers x multipliers -4..4 (default), fast engine, all positions. Two runs on the same items:

  full      run_sweep(engine fast): every layer at every multiplier
  screened  run_sweep(engine fast, screen grad, confirm_top K, spot_check J): the screen on the validation items,
            the exact engine on the confirmed layers (and the spot check at each sign's peak multiplier)

Work is counted by the engines' own counters (decoder layer x token evaluations: ``EngineStats.layer_tokens``,
the screen's ``ScreenStats.layer_tokens`` forward + backward), not wall time, and expressed in full-pass
equivalents: one pass = every decoder layer over the items' padded tokens (batches of --batch-size in item
order), the unit of docs/cost_model.md. The fast engine's one-point run-time check (a few naive passes on
the first batch) is not counted in either run. Printed: passes of each run, the saving, the reported peaks
of both runs side by side (held-out, at the largest |m| of each sign and at +-1; they must be the same),
Spearman rho between the screen's prediction and the exact movement on the validation items, and the
modelled saving of an 80-layer x 8-multiplier grid (Llama-2-70B's shape) with its assumptions.

  python benchmarks/bench_screen.py                          # 50 items (about 10 minutes on 1 CPU thread)
  python benchmarks/bench_screen.py --items 16 --threads 1   # the run in docs/screen.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch


def modelled_saving(L=80, M=8, K=5, J=3, val_fraction=0.5, peak_depth=0.4, backward=1.0) -> dict:
    """Full-pass equivalents per evaluation item of a full sweep and of screen + top-K (docs/cost_model.md):

    full (fast engine, layer skipping only): 1 + M * sum_l (L-1-l)/L = 1 + M(L-1)/2
    screened: screen (1 + backward) passes over the validation items = (1 + backward) * val_fraction per item,
              + the unsteered pass 1, + M multipliers at K confirmed layers at depth `peak_depth`
              ((L-1-l)/L each), + the spot check: J layers at 2 multipliers (the signs' peak multipliers) at
              mean depth 0.5. The first-order screen ranks the same layers for both signs, so K layers in all.
    """
    tail = lambda depth: (L - 1 - depth * L) / L  # noqa: E731
    full = 1 + M * (L - 1) / 2
    screen = (1 + backward) * val_fraction
    exact = 1 + M * K * tail(peak_depth) + 2 * J * tail(0.5)
    return {"L": L, "M": M, "K": K, "J": J, "val_fraction": val_fraction, "peak_depth": peak_depth,
            "backward_over_forward": backward, "full": full, "screen": screen, "screened": screen + exact,
            "saving": full / (screen + exact)}


def pass_unit(encoded, n_layers: int, batch_size: int) -> int:
    """Layer-token evaluations of one full pass over the items (padded batches in item order)."""
    tot = 0
    for i in range(0, len(encoded), batch_size):
        b = encoded[i:i + batch_size]
        tot += len(b) * max(len(e.prefix_ids) for e in b)
    return n_layers * tot


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=50, help="refusal-test items (default 50)")
    ap.add_argument("--train-limit", type=int, default=64, help="refusal-train items for the vectors (default 64)")
    ap.add_argument("--multipliers", default="-4,-3,-2,-1,0,1,2,3,4")
    ap.add_argument("--confirm-top", type=int, default=5)
    ap.add_argument("--spot-check", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="results/bench/bench_screen.json")
    ap.add_argument("--model-only", action="store_true", help="print only the modelled 80 x 8 saving")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    models = {f"K={k}": modelled_saving(K=k) for k in (5, 10)}
    print("modelled saving, 80 layers x 8 steered multipliers (docs/cost_model.md; assumptions: fast engine layer "
          "skipping only, the screen's backward pass = 1 forward, the screen on a validation half, confirmed layers at "
          "40% depth, J = 3 spot-checked layers at the 2 peak multipliers at 50% depth):")
    for k, m in models.items():
        print(f"  {k}: full {m['full']:.1f} passes per item, screen {m['screen']:.1f} + exact "
              f"{m['screened'] - m['screen']:.1f} = {m['screened']:.1f}: {m['saving']:.1f}x fewer")
    if args.model_only:
        return 0

    from steerscale import load_dataset, load_model, train_vectors
    from steerscale.analysis.model import analyze
    from steerscale.core.prompts import encode_items
    from steerscale.sweep.screening import validation_indices
    from steerscale.config import SweepConfig
    from steerscale.sweep.run import run_sweep

    t0 = time.time()
    model, tok, info = load_model(args.model)
    train = load_dataset("refusal-train", limit=args.train_limit)
    items = load_dataset("refusal-test", limit=args.items)
    vecs = train_vectors(model, tok, train, template="chat", batch_size=args.batch_size, info=info, progress=False)
    mults = [float(x) for x in args.multipliers.split(",")]
    base = dict(multipliers=mults, batch_size=args.batch_size, engine="fast", n_bootstrap=200)
    encoded = encode_items(tok, items, "chat", None)
    unit = pass_unit(encoded, info.n_layers, args.batch_size)

    runs = {}
    for name, extra in (("full", {}), ("screened", dict(screen="grad", confirm_top=args.confirm_top,
                                                        spot_check=args.spot_check))):
        t = time.time()
        res = run_sweep(model, tok, vecs, items, SweepConfig(**base, **extra), info=info, progress=False)
        eng = res.manifest["engine"]
        scr = res.manifest.get("screen")
        work = {"exact_layer_tokens": eng["layer_tokens"],
                "screen_layer_tokens": scr["work"]["layer_tokens"] if scr else 0}
        passes = (work["exact_layer_tokens"] + work["screen_layer_tokens"]) / unit
        peaks = {}
        for label, m in (("max|m|", None), ("|m|=1", 1.0)):
            if m is None or (m in mults and -m in mults):
                a = analyze(res.rows, n_boot=200, multiplier=m)
                peaks[label] = {s: {"layer": p.layer, "delta": round(p.delta, 4)} for s, p in a.peaks.items()}
        runs[name] = {"seconds": round(time.time() - t, 1), "work": work, "passes_per_item": passes,
                      "exact_passes_per_item": work["exact_layer_tokens"] / unit,
                      "screen_passes_per_item": work["screen_layer_tokens"] / unit, "peaks": peaks,
                      "layers_measured": sorted({r["layer"] for r in res.rows}), "screen": scr, "rows": res.rows}
        print(f"{name}: {passes:.2f} full-pass equivalents per item (exact {runs[name]['exact_passes_per_item']:.2f}, "
              f"screen {runs[name]['screen_passes_per_item']:.2f}), {len(runs[name]['layers_measured'])} layers "
              f"measured, {runs[name]['seconds']:.0f} s; peaks {json.dumps(peaks)}")

    # the screen's prediction against the exact movement (full sweep) on the validation items
    cfg = SweepConfig(**base).validate(info.n_layers)
    val = {items[i].id for i in validation_indices(len(items), cfg)}
    full_rows = runs["full"]["rows"]
    b0 = {r["item"]: r["score"] for r in full_rows if r["multiplier"] == 0.0 and r["layer"] == 0}
    grad = runs["screened"]["screen"]["gradient"]
    agreement = {}
    for m in [x for x in mults if x != 0]:
        exact = [np.mean([r["score"] - b0[r["item"]] for r in full_rows if r["layer"] == l and r["multiplier"] == m
                          and r["item"] in val]) for l in range(info.n_layers)]
        pred = [m * grad[str(l)] for l in range(info.n_layers)]
        s = 1 if m > 0 else -1
        exact_peak = int(np.argmax(s * np.array(exact)))
        order = sorted(range(info.n_layers), key=lambda l: -s * pred[l])
        agreement[f"{m:+g}"] = {"spearman": spearman(pred, exact), "exact_peak_val": exact_peak,
                                "its_screen_rank": order.index(exact_peak) + 1}
        print(f"m = {m:+g}: Spearman rho (screen vs exact, validation items, {info.n_layers} layers) "
              f"{agreement[f'{m:+g}']['spearman']:.3f}; exact peak layer {exact_peak} is rank "
              f"{agreement[f'{m:+g}']['its_screen_rank']} in the screen")
    f, s_ = runs["full"], runs["screened"]
    same = f["peaks"] == s_["peaks"]
    print(f"saving (measured, work counters): {f['passes_per_item']:.2f} / {s_['passes_per_item']:.2f} = "
          f"{f['passes_per_item'] / s_['passes_per_item']:.2f}x; reported peaks identical: {same}")
    out = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "items": len(items),
           "n_layers": info.n_layers, "multipliers": mults, "confirm_top": args.confirm_top,
           "spot_check": args.spot_check, "batch_size": args.batch_size, "torch_threads": torch.get_num_threads(),
           "pass_unit_layer_tokens": unit, "modelled": models, "agreement": agreement,
           "peaks_identical": same, "saving_measured": f["passes_per_item"] / s_["passes_per_item"],
           "runs": {k: {kk: vv for kk, vv in v.items() if kk != "rows"} for k, v in runs.items()},
           "seconds_total": round(time.time() - t0, 1)}
    os.makedirs(Path(args.out).parent, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
