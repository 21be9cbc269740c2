"""Print every number README.md and docs/showcase.md quote from a `make demo` run, from its output folder.

    python scripts/demo_numbers.py results/demo [--model smollm2-135m] [--time-log demo.log]

Reads only the run's files (summary.json, <model>/vectors.safetensors metadata, <model>/reliability.json,
<model>/split_half.json, <model>/showcase/*.csv + manifest.json + captions.json) and the built-in test set
(for the items' matching letters); loads no model. With --time-log (the output of `/usr/bin/time -v make demo`)
it also prints the wall time and peak RSS. Each block names what it measures.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path


def ci(r: dict, k: str, d: int = 2) -> str:
    return f"{r[k]:+.{d}f} [{r[k + '_low']:+.{d}f}, {r[k + '_high']:+.{d}f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the demo's output folder (results/demo)")
    ap.add_argument("--model", default="smollm2-135m", help="model name (default smollm2-135m)")
    ap.add_argument("--time-log", help="the output of `/usr/bin/time -v make demo`")
    a = ap.parse_args(argv)
    from steerscale.analysis.reliability import Reliability
    from steerscale.core.data import load_dataset
    from steerscale.core.letters import LetterFigures
    from steerscale.showcase.run import load_showcase
    from steerscale.core.vectors import SteeringVectors

    from steerscale.reproduce.config import slug

    out, folder = Path(a.out), Path(a.out) / slug(a.model)
    summary = json.loads((out / "summary.json").read_text())
    m = next(x for x in summary["models"] if x["model"] == a.model)
    cfg = json.loads((out / "reproduce_config.json").read_text())

    if a.time_log:
        t = Path(a.time_log).read_text()
        wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", t).group(1)
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
        load = re.search(r"Percent of CPU this job got: (\S+)", t).group(1)
        print(f"[run] make demo wall {wall}, peak RSS {rss / 1e6:.2f} GB, CPU {load} of one core")

    print("\n[A/B sweep] baseline and peaks (summary.json; peaks chosen on validation items, reported on test items)")
    b = m["baseline"]
    print(f"  baseline p(refusal) {b['p']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}], letter mass "
          f"{b['letter_mass']:.0%}, {b['n_items']} items")
    for sign, p in m["peaks"].items():
        print(f"  {sign} peak layer {p['layer']} (depth {p['depth']:.2f}): delta {p['delta']:+.3f} "
              f"[{p['ci_low']:+.3f}, {p['ci_high']:+.3f}] on {p['n_test']} test items")
    for c in summary["claims"]:
        print(f"  [{c['verdict']}] {c['claim']}")

    vec = SteeringVectors.load(folder / "vectors.safetensors")
    lf = LetterFigures.from_meta(vec.meta)
    peaks = sorted({p["layer"] for p in m["peaks"].values()})
    mean = vec.meta["mean_residual_norm"]
    frac = [float(vec.vectors[l].norm()) / mean[l] for l in range(vec.n_layers) if mean[l] > 0]
    print(f"\n[vectors] estimator {vec.meta.get('letter_balance')}, training letters {lf.counts} "
          f"(s̄ = {lf.imbalance:+.3f}), |v| / mean residual norm {min(frac):.1%}–{max(frac):.1%} over layers")
    for l in sorted(set(peaks) | {4, 12, 22, 29} & set(range(vec.n_layers))):
        cos = lf.cos_letter[l]
        print(f"  layer {l}: |l| {lf.letter_norm[l]:.1f}, |r| {lf.behaviour_norm[l]:.2f}, |v| {lf.vector_norm[l]:.2f}, "
              f"cos(v, l) {cos if cos is None else f'{cos:+.2f}'}, imbalance share {lf.imbalance_share[l]}")

    rel = Reliability.from_dict(json.loads((folder / "reliability.json").read_text()))
    print("\n[reliability] (reliability.json; split_half.json)")
    if rel.split_half is not None:
        sh = rel.split_half
        ok = [c for c in sh.cosine if c == c]
        print(f"  split-half cosine ({sh.estimator}; halves {sh.letters_a.counts} / {sh.letters_b.counts}): min "
              f"{min(ok):.3f}, median {statistics.median(ok):.3f}, max {max(ok):.3f}; at peak layers "
              + ", ".join(f"L{l} {sh.at(l):.3f}" for l in peaks) + f"; cost {sh.seconds:.0f} s")
        low = sorted(zip(sh.cosine, sh.layers))[:3]
        print("  lowest: " + ", ".join(f"L{l} {c:.3f}" for c, l in low))
    if rel.test_letters is not None:
        print(f"  test items by matching letter: {rel.test_letters.counts} (s̄ = {rel.test_letters.imbalance:+.2f})")
    for l in peaks:
        s = rel.steer_at(l)
        print(f"  steerability L{l}: mean log-odds slope {s.mean_slope:+.3f} [{s.slope_low:+.3f}, {s.slope_high:+.3f}]"
              f" per unit m, median {s.median_slope:+.3f}, anti-steerable {s.frac_anti:.0%} "
              f"[{s.frac_anti_low:.0%}, {s.frac_anti_high:.0%}] of {s.n_items} items")
    fa = [s.frac_anti for s in rel.steerability]
    print(f"  anti-steerable fraction over the {len(fa)} swept layers: {min(fa):.0%}–{max(fa):.0%}")

    sc = load_showcase(folder)
    panels = sc.manifest["panels"]
    caps = json.loads((sc.folder / "captions.json").read_text()) if (sc.folder / "captions.json").is_file() else {}
    dose, ctl = sc.tables.get("dose", []), sc.tables.get("dose_control", [])
    if dose:
        print(f"\n[showcase dose] layers {panels['dose']['layers']} ({panels['dose']['layer_choice']}), "
              f"{panels['dose']['n_items']} test items; controls: {panels['dose'].get('controls')}")
        letters = {it.id: it.matching for it in load_dataset(cfg["data"]["test"])}
        for r in sorted(dose, key=lambda r: (r["layer"], r["multiplier"])):
            if r["multiplier"] == 0:
                continue
            rng = [c for c in ctl if c["layer"] == r["layer"] and c["multiplier"] == r["multiplier"]]
            cr = (f"; controls behaviour {min(c['delta_logodds'] for c in rng):+.2f}..{max(c['delta_logodds'] for c in rng):+.2f}"
                  f", letter {min(c['delta_letter_logodds'] for c in rng):+.2f}..{max(c['delta_letter_logodds'] for c in rng):+.2f}"
                  if rng else "")
            print(f"  L{int(r['layer'])} m {r['multiplier']:+g} (raw x{r['raw_multiplier']:.2f}): behaviour "
                  f"{ci(r, 'delta_logodds')}, letter A {ci(r, 'delta_letter_logodds')}, p {r['p']:.3f}{cr}")
        items = sc.tables.get("dose_items", [])
        top = max(r["multiplier"] for r in dose)
        for layer in sorted({r["layer"] for r in dose}):
            base = {r["item"]: r["logit_diff"] for r in items if r["layer"] == layer and r["multiplier"] == 0}
            for x in "AB":
                d = [r["logit_diff"] - base[r["item"]] for r in items if r["layer"] == layer and
                     r["multiplier"] == top and letters.get(r["item"]) == x]
                if d:
                    print(f"  L{int(layer)} m {top:+g}: refusal-answer log-odds change on {len(d)} items whose refusal "
                          f"answer is {x}: mean {statistics.mean(d):+.2f}")
        print(f"  seconds: dose {panels['dose'].get('seconds')} (controls {panels['dose'].get('controls', {}).get('seconds')})")
    oe = sc.tables.get("openended_layers", [])
    if oe:
        print("\n[showcase openended] first-token refusal log-odds (largest |harmful| change per multiplier)")
        for mult in sorted({r["multiplier"] for r in oe}):
            r = max((r for r in oe if r["multiplier"] == mult), key=lambda r: abs(r["delta_logodds_harmful"]))
            print(f"  m {mult:+g} L{int(r['layer'])}: harmful {ci(r, 'delta_logodds_harmful')}, harmless "
                  f"{ci(r, 'delta_logodds_harmless')}, difference {ci(r, 'delta_logodds_contrast')}, CE "
                  f"{r.get('ce_delta')}")
    ab = sc.tables.get("ablation", [])
    if ab:
        print(f"\n[showcase ablation] layer {panels['ablation']['layer']} ({panels['ablation']['layer_choice']})")
        for r in ab:
            ce = f", CE {ci(r, 'ce_delta', 3)}" if r.get("ce_delta") is not None else ""
            print(f"  {r['condition']} x{r['multiplier']}: harmful {ci(r, 'delta_logodds_harmful')}, harmless "
                  f"{ci(r, 'delta_logodds_harmless')}, p_open_harmful {r['p_open_harmful']:.2f}{ce}")
        print(f"  seconds: ablation {panels['ablation'].get('seconds')}")
    print("\n[captions] (showcase/captions.json, generated from the tables)")
    for k, v in caps.items():
        print(f"  {k}: {v}")
    man = json.loads((folder / "manifest.json").read_text())
    print(f"\n[timings] A/B training + sweep {man['reproduce']['timings_s']}, split-half "
          f"{json.loads((folder / 'split_half.json').read_text())['seconds'] if (folder / 'split_half.json').is_file() else None} s, "
          f"showcase {sc.manifest.get('timings_s')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
