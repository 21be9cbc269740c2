"""The tables of an open-ended sweep: their columns, the per-point aggregate, the CE-bounded multiplier,
and `OpenEndedResult` (save) / `read_openended` (load).

Intervals are the one seeded bootstrap of steerscale.stats: ``nan_mean_ci`` over prompts (NaN verdicts
dropped), ``mean_ci`` of per-prompt differences for the paired changes from multiplier 0, ``diff_ci`` for
the harmful - harmless contrast (independent prompt sets), ``ratio_ci`` (through CrossEntropy.ci) for CE.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SteerscaleError
from ..io.results import save_tables
from ..stats import diff_ci, nan_mean_ci
from ..measures.capability import degeneration

if TYPE_CHECKING:
    from ..config import OpenEndedConfig

LOGODDS_COLUMNS = ["model", "n_layers", "layer_start", "layer_end", "width", "depth", "multiplier", "prompt_id",
                   "kind", "category", "logodds", "p_open"]
GEN_COLUMNS = ["model", "n_layers", "layer_start", "layer_end", "width", "depth", "multiplier", "mode", "prompt_id",
               "kind", "category", "prompt", "unsteered_output", "output", "phrase_refusal",
               "unsteered_phrase_refusal", "matched_phrase", "judge_refusal", "unsteered_judge_refusal",
               "rep_3", "distinct_1", "distinct_2", "n_words"]
CE_COLUMNS = ["model", "n_layers", "layer_start", "layer_end", "width", "depth", "multiplier", "text_id", "n_tokens",
              "nll_sum", "ce"]
AGG_COLUMNS = ["model", "n_params", "n_layers", "layer_start", "layer_end", "width", "depth", "depth_alt",
               "multiplier",
               "n_harmful", "logodds_harmful", "logodds_harmful_low", "logodds_harmful_high", "delta_logodds_harmful",
               "delta_logodds_harmful_low", "delta_logodds_harmful_high",
               "n_harmless", "logodds_harmless", "logodds_harmless_low", "logodds_harmless_high",
               "delta_logodds_harmless", "delta_logodds_harmless_low", "delta_logodds_harmless_high",
               "delta_logodds_contrast", "delta_logodds_contrast_low", "delta_logodds_contrast_high",
               "p_open_harmful", "p_open_harmless",
               "n_generated", "phrase_refusal_harmful", "phrase_refusal_harmful_low", "phrase_refusal_harmful_high",
               "phrase_refusal_harmless", "phrase_refusal_harmless_low", "phrase_refusal_harmless_high",
               "phrase_refusal_harmful_sampled", "phrase_refusal_harmless_sampled",
               "judge_refusal_harmful", "judge_refusal_harmless",
               "rep_3", "distinct_1", "distinct_2",
               "ce", "ce_low", "ce_high", "ce_delta", "ce_delta_low", "ce_delta_high", "perplexity"]
MAXMULT_COLUMNS = ["model", "layer_start", "layer_end", "width", "sign", "ce_bound", "max_multiplier", "ce_delta",
                   "delta_logodds_harmful", "delta_logodds_harmless", "tested"]


@dataclass
class OpenEndedResult:
    logodds: list[dict]
    generations: list[dict]
    ce: list[dict]
    aggregate: list[dict]
    max_multiplier: list[dict]
    manifest: dict

    def save(self, out_dir) -> Path:
        """logodds.csv, generations.csv, ce.csv, aggregate.csv/.json, max_multiplier.csv (when a CE bound was
        given), then manifest.json last (results.save_tables)."""
        tables = [("logodds.csv", self.logodds, LOGODDS_COLUMNS), ("generations.csv", self.generations, GEN_COLUMNS),
                  ("ce.csv", self.ce, CE_COLUMNS), ("aggregate.csv", self.aggregate, AGG_COLUMNS),
                  ("aggregate.json", self.aggregate, None)]
        if self.max_multiplier:
            tables.append(("max_multiplier.csv", self.max_multiplier, MAXMULT_COLUMNS))
        return save_tables(out_dir, tables, self.manifest)


def read_openended(folder) -> dict:
    """A saved open-ended sweep: {"aggregate": rows of aggregate.json, "generations": rows of generations.csv
    (layer_start/layer_end/multiplier/phrase_refusal typed), "manifest": manifest.json}."""
    import csv

    folder = Path(folder)
    try:
        agg = json.loads((folder / "aggregate.json").read_text())
        man = json.loads((folder / "manifest.json").read_text())
        with open(folder / "generations.csv", newline="", encoding="utf-8") as f:
            gens = list(csv.DictReader(f))
    except FileNotFoundError as e:
        raise SteerscaleError(f"{folder}: no {Path(e.filename).name}; not a complete open-ended sweep") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SteerscaleError(f"{folder}: unreadable results ({e})") from None
    for g in gens:
        g.update(layer_start=int(g["layer_start"]), layer_end=int(g["layer_end"]), multiplier=float(g["multiplier"]),
                 phrase_refusal=int(g["phrase_refusal"]))
    return {"aggregate": agg, "generations": gens, "manifest": man}


def _nanmean(x) -> float:
    x = np.asarray([v for v in x if v is not None], dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def max_multiplier_under_bound(aggregate: list[dict], bound: float) -> list[dict]:
    """Per point and sign, the largest |multiplier| whose CE increase is <= `bound`, scanning outward from 0.

    The scan stops at the first magnitude that breaks the bound (so a later magnitude that happens to be
    back under it does not count). max_multiplier is 0 when even the smallest magnitude breaks the bound.
    """
    out = []
    groups: dict[tuple, list[dict]] = {}
    for r in aggregate:
        groups.setdefault((r["model"], r["layer_start"], r["layer_end"]), []).append(r)
    for (model, s, e), rows in sorted(groups.items()):
        for sign in (-1, 1):
            cand = sorted([r for r in rows if r["multiplier"] * sign > 0], key=lambda r: abs(r["multiplier"]))
            if not cand:
                continue
            best = None
            for r in cand:
                if not (r["ce_delta"] <= bound):
                    break
                best = r
            out.append({
                "model": model, "layer_start": s, "layer_end": e, "width": e - s + 1, "sign": "+" if sign > 0 else "-",
                "ce_bound": bound, "max_multiplier": best["multiplier"] if best else 0.0,
                "ce_delta": best["ce_delta"] if best else 0.0,
                "delta_logodds_harmful": best["delta_logodds_harmful"] if best else 0.0,
                "delta_logodds_harmless": best["delta_logodds_harmless"] if best else 0.0,
                "tested": " ".join(f"{r['multiplier']:g}" for r in cand),
            })
    return out


def aggregate_point(info, row0, lo, base_lo, lo_prompts, gens, jd, gen_prompts, ce, base_ce, phrases,
                    config: OpenEndedConfig):
    """One aggregate.csv row: means with bootstrap intervals over prompts (paired by prompt for the changes
    from multiplier 0; harmful and harmless resampled independently for their contrast), phrase refusal,
    judge refusal, degeneration, and CE with its paired increase over paragraphs (see stats)."""
    nb, seed = config.n_bootstrap, config.seed
    r = dict(row0, n_params=info.n_params, depth_alt=row0["layer_start"] / max(info.n_layers - 1, 1))
    diffs = {}
    for kind in ("harmful", "harmless"):
        sel = np.array([k == kind for _, k in lo_prompts], dtype=bool)
        mean, low, high = nan_mean_ci(lo.logodds[sel], nb, seed)
        r[f"n_{kind}"] = int(sel.sum())
        r[f"logodds_{kind}"], r[f"logodds_{kind}_low"], r[f"logodds_{kind}_high"] = mean, low, high
        r[f"delta_logodds_{kind}"] = mean - _nanmean(base_lo.logodds[sel]) if sel.any() else float("nan")
        diffs[kind] = lo.logodds[sel] - base_lo.logodds[sel]  # paired by prompt
        _, r[f"delta_logodds_{kind}_low"], r[f"delta_logodds_{kind}_high"] = nan_mean_ci(diffs[kind], nb, seed)
        r[f"p_open_{kind}"] = _nanmean(lo.p_open[sel])
    # harmful minus harmless change: independent prompt sets, each resampled on its own
    r["delta_logodds_contrast"] = r["delta_logodds_harmful"] - r["delta_logodds_harmless"]
    r["delta_logodds_contrast_low"], r["delta_logodds_contrast_high"] = diff_ci(diffs["harmful"], diffs["harmless"],
                                                                                nb, seed)
    r["n_generated"] = len(gen_prompts)
    for mode, texts in gens.items():
        suffix = "" if mode == "greedy" else "_sampled"
        for kind in ("harmful", "harmless"):
            vals = [phrases(t) for t, (_, k) in zip(texts, gen_prompts) if k == kind]
            if suffix:
                r[f"phrase_refusal_{kind}{suffix}"] = _nanmean(vals)
            else:
                r[f"phrase_refusal_{kind}"], r[f"phrase_refusal_{kind}_low"], r[f"phrase_refusal_{kind}_high"] = \
                    nan_mean_ci(vals, nb, seed)
                if jd:
                    r[f"judge_refusal_{kind}"] = _nanmean([v for v, (_, k) in zip(jd[mode], gen_prompts) if k == kind])
        if mode == "greedy":
            d = [degeneration(t) for t in texts]
            for key in ("rep_3", "distinct_1", "distinct_2"):
                r[key] = _nanmean([x[key] for x in d])
    if ce is not None:
        r["ce"], r["ce_low"], r["ce_high"] = ce.ci(nb, seed)
        r["ce_delta"], r["ce_delta_low"], r["ce_delta_high"] = ce.ci(nb, seed, base=base_ce)
        r["perplexity"] = math.exp(ce.mean)
    else:
        r["ce_delta"] = float("nan")
    return r
