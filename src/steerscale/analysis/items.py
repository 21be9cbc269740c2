"""A sweep's per-item rows, read and checked (``items.csv``), and held as arrays per model (:class:`ItemTable`)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SteerscaleError


_INT = ("n_params", "n_layers", "layer")
_FLOAT = ("depth", "multiplier", "score", "logit_diff", "letter_mass")


def read_items_csv(path) -> list[dict]:
    """Rows of a sweep's ``items.csv`` with numeric columns converted."""
    path = Path(path)
    if not path.is_file():
        raise SteerscaleError(f"{path}: no such file (expected a sweep's items.csv)")
    out = []
    with open(path, newline="") as f:
        for n, r in enumerate(csv.DictReader(f), 2):
            try:
                for k in _INT:
                    r[k] = int(float(r[k]))
                for k in _FLOAT:
                    if r.get(k) not in (None, ""):
                        r[k] = float(r[k])
            except (KeyError, ValueError, TypeError) as e:
                raise SteerscaleError(f"{path}: row {n}: bad or missing column ({e})") from None
            if not 0.0 <= r["score"] <= 1.0:  # a probability; NaN and Inf fail here too
                raise SteerscaleError(f"{path}: row {n}: score {r['score']!r} is not a probability in [0, 1]")
            for k in ("multiplier", "logit_diff", "depth"):
                if isinstance(r.get(k), float) and not math.isfinite(r[k]):
                    raise SteerscaleError(f"{path}: row {n}: {k} {r[k]!r} is not a finite number")
            out.append(r)
    if not out:
        raise SteerscaleError(f"{path}: no rows")
    return out


@dataclass
class ItemTable:
    """Per-item scores of one model as arrays: ``score[layer_index, multiplier_index, item_index]``."""

    model: str
    n_params: int
    n_layers: int
    layers: list[int]
    multipliers: list[float]
    items: list[str]
    categories: list[str]
    score: np.ndarray
    logit_diff: np.ndarray
    letter_mass: np.ndarray
    baseline: np.ndarray  # per-item score at multiplier 0
    baseline_logit: np.ndarray

    @classmethod
    def from_rows(cls, rows: list[dict], model: str | None = None) -> "ItemTable":
        models = sorted({r["model"] for r in rows})
        if model is None:
            if len(models) != 1:
                raise SteerscaleError(f"rows hold {len(models)} models ({', '.join(models)}); name one")
            model = models[0]
        rows = [r for r in rows if r["model"] == model]
        if not rows:
            raise SteerscaleError(f"no rows for model {model!r}; models present: {', '.join(models)}")
        layers = sorted({int(r["layer"]) for r in rows})
        mults = sorted({float(r["multiplier"]) for r in rows})
        items = list(dict.fromkeys(str(r["item"]) for r in rows))
        if 0.0 not in mults:
            raise SteerscaleError(f"model {model}: no rows at multiplier 0; the baseline is needed for effects")
        li = {l: i for i, l in enumerate(layers)}
        mi = {m: i for i, m in enumerate(mults)}
        ii = {it: i for i, it in enumerate(items)}
        shape = (len(layers), len(mults), len(items))
        arrs = {k: np.full(shape, np.nan) for k in ("score", "logit_diff", "letter_mass")}
        cats = [""] * len(items)
        for r in rows:
            idx = (li[int(r["layer"])], mi[float(r["multiplier"])], ii[str(r["item"])])
            for k in arrs:
                v = r.get(k)
                arrs[k][idx] = float(v) if v not in (None, "") else np.nan
            cats[idx[2]] = str(r.get("category", ""))
        if np.isnan(arrs["score"]).any():
            missing = int(np.isnan(arrs["score"]).sum())
            raise SteerscaleError(
                f"model {model}: {missing} of {arrs['score'].size} (layer, multiplier, item) scores are missing; "
                "the sweep is incomplete"
            )
        z = mi[0.0]
        r0 = rows[0]
        return cls(
            model=model, n_params=int(r0["n_params"]), n_layers=int(r0["n_layers"]), layers=layers,
            multipliers=mults, items=items, categories=cats, score=arrs["score"],
            logit_diff=arrs["logit_diff"], letter_mass=arrs["letter_mass"],
            baseline=arrs["score"][:, z, :].mean(0), baseline_logit=arrs["logit_diff"][:, z, :].mean(0),
        )

    def subset(self, idx) -> "ItemTable":
        idx = np.asarray(idx, dtype=int)
        return ItemTable(
            self.model, self.n_params, self.n_layers, self.layers, self.multipliers,
            [self.items[i] for i in idx], [self.categories[i] for i in idx], self.score[:, :, idx],
            self.logit_diff[:, :, idx], self.letter_mass[:, :, idx], self.baseline[idx], self.baseline_logit[idx],
        )

    @property
    def n_items(self) -> int:
        return len(self.items)

    def depth(self, layer: int) -> float:
        return layer / self.n_layers

    def depth_alt(self, layer: int) -> float:
        return layer / max(self.n_layers - 1, 1)
