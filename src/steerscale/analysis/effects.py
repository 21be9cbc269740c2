"""Effects of steering on one model's items: the baseline, Δ(L, m) with paired intervals, per-item slopes.

Every interval is a seeded percentile bootstrap over items (``stats.bootstrap_weights``); Δ is paired: each
resample uses the same items for the steered score and the baseline.
"""

from __future__ import annotations

import numpy as np

from ..errors import SteerscaleError
from ..stats import bootstrap_weights, percentile_ci
from .items import ItemTable


def baseline(table: ItemTable, n_boot: int = 1000, seed: int = 0) -> dict:
    """p(behaviour) of the unsteered model with a bootstrap interval, and how well it reads the format."""
    w = bootstrap_weights(table.n_items, n_boot, seed)
    lo, hi = percentile_ci(w @ table.baseline)
    z = table.multipliers.index(0.0)
    mass = float(np.nanmean(table.letter_mass[:, z, :]))
    return {"p": float(table.baseline.mean()), "ci_low": lo, "ci_high": hi, "n_items": table.n_items,
            "letter_mass": mass, "frac_decided": float(np.mean(np.abs(table.baseline - 0.5) > 0.25)),
            "logit_diff": float(table.baseline_logit.mean())}


def effects(table: ItemTable, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """One row per (layer, multiplier): p, its interval, Δ = p − p(0) and its paired interval."""
    w = bootstrap_weights(table.n_items, n_boot, seed)  # [B, n]
    p_boot = table.score @ w.T  # [L, M, B]
    d = table.score - table.baseline[None, None, :]
    d_boot = d @ w.T
    out = []
    for i, layer in enumerate(table.layers):
        for j, m in enumerate(table.multipliers):
            plo, phi = percentile_ci(p_boot[i, j])
            dlo, dhi = percentile_ci(d_boot[i, j]) if m != 0 else (0.0, 0.0)
            out.append({
                "model": table.model, "n_params": table.n_params, "n_layers": table.n_layers, "layer": layer,
                "depth": table.depth(layer), "depth_alt": table.depth_alt(layer), "multiplier": m,
                "n_items": table.n_items, "p": float(table.score[i, j].mean()), "p_low": plo, "p_high": phi,
                "delta": float(d[i, j].mean()), "delta_low": dlo, "delta_high": dhi,
                "logit_delta": float((table.logit_diff[i, j] - table.baseline_logit).mean()),
            })
    return out


def item_slopes(table: ItemTable) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope of each item's score and logit difference against the multiplier: [layers, items] each."""
    m = np.asarray(table.multipliers)
    if len(m) < 2:
        raise SteerscaleError("per-item slopes need at least two multipliers")
    mc = m - m.mean()
    denom = float((mc ** 2).sum())
    s = np.einsum("m,lmi->li", mc, table.score) / denom
    g = np.einsum("m,lmi->li", mc, table.logit_diff) / denom
    return s, g


def steerability(table: ItemTable, n_boot: int = 1000, seed: int = 0, tol: float = 1e-6) -> list[dict]:
    """Per layer: mean per-item slope (score and logit difference per unit multiplier), its interval,
    and the fraction of items moving the wrong way (slope < −tol: steering towards the behaviour lowers it)."""
    s, g = item_slopes(table)
    w = bootstrap_weights(table.n_items, n_boot, seed)
    sb = s @ w.T
    out = []
    for i, layer in enumerate(table.layers):
        lo, hi = percentile_ci(sb[i])
        out.append({
            "model": table.model, "layer": layer, "depth": table.depth(layer), "slope": float(s[i].mean()),
            "slope_low": lo, "slope_high": hi, "slope_median": float(np.median(s[i])),
            "logit_slope": float(g[i].mean()), "frac_wrong_way": float(np.mean(s[i] < -tol)),
            "frac_right_way": float(np.mean(s[i] > tol)),
        })
    return out


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)
