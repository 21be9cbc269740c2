"""The dose panel's control: K seeded random directions of the same norm as the vector at each dose layer,
measured at the same multipliers on the same items (``dose_control.csv``), so that an effect is the vector's
only if it beats what any direction of that size does.

Contract: direction k at layer L is a standard-normal draw of ``numpy.random.default_rng([seed, k, L])``
rescaled to |vector[L]| (the vector as the dose panel steers with it, i.e. after its normalisation); layers
not measured are zero. ``showcase`` turns each control's sweep into :func:`showcase.dose_rows`, with ``direction``
("random-<k>") and ``control_seed`` in front.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def random_directions(vectors: torch.Tensor, layers: list[int], k: int, seed: int) -> torch.Tensor:
    """[n_layers, hidden] float32: control direction `k`, |row L| = |vectors[L]| at `layers`, 0 elsewhere."""
    out = torch.zeros_like(vectors, dtype=torch.float32)
    for layer in layers:
        g = np.random.default_rng([int(seed), int(k), int(layer)]).standard_normal(vectors.shape[-1])
        g = torch.from_numpy(g / np.linalg.norm(g)).float()
        out[layer] = g * float(vectors[layer].double().norm())
    return out


def control_sweeps(model: PreTrainedModel, tok, info, v, test, sc, cfg,
                   progress=False) -> list[tuple[str, list[dict], torch.Tensor]]:
    """The K = ``cfg.dose_controls`` random directions, each swept like the vector `v` (the dose panel's
    normalised SteeringVectors) with sweep config `sc` on `test` (``run_sweep``): (name, item rows, vectors)."""
    from ..sweep.run import run_sweep
    from ..core.vectors import SteeringVectors

    out = []
    for k in range(cfg.dose_controls):
        rv = SteeringVectors(random_directions(v.vectors, sc.layers, k, cfg.seed), dict(v.meta, control=f"random-{k}"))
        out.append((f"random-{k}", run_sweep(model, tok, rv, test, sc, info=info, progress=progress).rows, rv.vectors))
    return out


def control_range(controls: list[dict], layer, multiplier, key: str) -> tuple[float, float] | None:
    """(min, max) of the controls' `key` at (layer, multiplier); None without controls there."""
    vals = [r[key] for r in controls or [] if r["layer"] == layer and r["multiplier"] == multiplier]
    return (min(vals), max(vals)) if vals else None


def beats(value: float, rng: tuple[float, float] | None) -> bool:
    """Whether `value` lies outside the controls' range and further from 0 than any of them."""
    if rng is None:
        return False
    return abs(value) > max(abs(rng[0]), abs(rng[1]))
