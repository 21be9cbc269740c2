"""Synthetic per-item sweep rows with known effects (no model needed)."""

from __future__ import annotations

import numpy as np


def make_rows(n_items=60, layers=range(10), multipliers=(-1.0, 0.0, 1.0), effect=None, n_layers=10,
              noise=0.05, seed=0, model="synth", n_params=1_000_000_000, item_effect=None,
              base_range=(0.3, 0.7)):
    """score(item, layer, m) = base_item + effect(layer, m) [+ item_effect(item, layer, m)] + noise, clipped to [0, 1].

    Baseline (m = 0) is the same at every layer, as in a real sweep."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(*base_range, n_items)
    effect = effect or (lambda layer, m: 0.0)
    rows = []
    for layer in layers:
        for m in multipliers:
            for i in range(n_items):
                if m == 0:
                    s = base[i]
                else:
                    e = effect(layer, m) + (item_effect(i, layer, m) if item_effect else 0.0)
                    s = base[i] + e + rng.normal(0, noise)
                s = float(np.clip(s, 0, 1))
                rows.append({"model": model, "n_params": n_params, "n_layers": n_layers, "layer": layer,
                             "depth": layer / n_layers, "multiplier": m, "item": f"i{i}", "category": "c",
                             "score": s, "logit_diff": float(np.log(max(s, 1e-6) / max(1 - s, 1e-6))),
                             "letter_mass": 0.9})
    return rows


def bump(center, height, width=1.5):
    """A peak of `height` x m at `center`, e.g. effect=bump(4, 0.2)."""
    return lambda layer, m: height * m * float(np.exp(-0.5 * ((layer - center) / width) ** 2))
