"""A sweep's tidy tables: one row per (model, layer, multiplier, item), aggregated per point.

``item_rows`` turns one point's scores into ``items.csv`` rows, ``aggregate_rows`` turns all rows into
``aggregate.csv`` rows (mean score with a seeded bootstrap 95% interval, ``delta`` against multiplier 0
at the same layer), and ``SweepResult.save`` writes both tables, ``aggregate.json`` and the manifest.
Given the same rows (in the same order), the tables are byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.data import ABItem
from ..core.evaluate import ABScores
from ..core.models import ModelInfo
from ..io.results import save_tables
from ..stats import mean_ci

ITEM_COLUMNS = [
    "model", "n_params", "n_layers", "layer", "depth", "multiplier", "item", "category",
    "score", "logit_diff", "letter_mass",
]
AGG_COLUMNS = [
    "model", "n_params", "n_layers", "layer", "depth", "depth_alt", "multiplier", "n_items",
    "score", "ci_low", "ci_high", "delta", "logit_diff", "letter_mass",
]


@dataclass
class SweepResult:
    rows: list[dict]
    aggregate: list[dict]
    manifest: dict

    def save(self, out_dir) -> Path:
        return save_tables(out_dir, [("items.csv", self.rows, ITEM_COLUMNS), ("aggregate.csv", self.aggregate,
                                      AGG_COLUMNS), ("aggregate.json", self.aggregate, None)], self.manifest)


def aggregate_rows(rows: list[dict], n_bootstrap: int = 1000, seed: int = 0) -> list[dict]:
    """Mean score per (model, layer, multiplier) with bootstrap interval and delta vs multiplier 0."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["layer"], r["multiplier"]), []).append(r)
    base = {}
    for (model, layer, m), g in groups.items():
        if m == 0.0:
            base[(model, layer)] = float(np.mean([r["score"] for r in g]))
    out = []
    for (model, layer, m), g in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        mean, lo, hi = mean_ci([r["score"] for r in g], n_bootstrap, seed)
        r0 = g[0]
        out.append({
            "model": model, "n_params": r0["n_params"], "n_layers": r0["n_layers"], "layer": layer,
            "depth": r0["depth"], "depth_alt": layer / max(r0["n_layers"] - 1, 1), "multiplier": m,
            "n_items": len(g), "score": mean, "ci_low": lo, "ci_high": hi,
            "delta": mean - base[(model, layer)] if (model, layer) in base else float("nan"),
            "logit_diff": float(np.mean([r["logit_diff"] for r in g])),
            "letter_mass": float(np.mean([r["letter_mass"] for r in g])),
        })
    return out


def item_rows(info: ModelInfo, layer: int, m: float, items: list[ABItem], s: ABScores) -> list[dict]:
    """``items.csv`` rows of one (layer, multiplier) point, in item order."""
    return [
        {
            "model": info.name, "n_params": info.n_params, "n_layers": info.n_layers, "layer": layer,
            "depth": layer / info.n_layers, "multiplier": m, "item": it.id, "category": it.category,
            "score": float(s.score[i]), "logit_diff": float(s.logit_diff[i]), "letter_mass": float(s.letter_mass[i]),
        }
        for i, it in enumerate(items)
    ]
