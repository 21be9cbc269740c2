"""Peaks: the layer that moves p furthest in each multiplier's direction, chosen on validation items and
reported on test items; layers that move p the wrong way."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ..core.data import split_items
from ..errors import SteerscaleError
from ..stats import LEVEL, bootstrap_weights, percentile_ci
from .items import ItemTable


def split_indices(table: ItemTable, val_fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (validation, test) split of item positions, via ``data.split_items``."""
    if table.n_items < 4:
        raise SteerscaleError(f"model {table.model}: {table.n_items} items; a validation/test split needs at least 4")
    val, test = split_items(list(range(table.n_items)), val_fraction, seed)
    if not val or not test:
        raise SteerscaleError(f"val_fraction {val_fraction}: leaves an empty validation or test split")
    return np.array(val), np.array(test)


def _sign_multiplier(table: ItemTable, sign: int, multiplier: float | None) -> float:
    if multiplier is not None:
        m = sign * abs(float(multiplier))
        if m not in table.multipliers:
            raise SteerscaleError(f"model {table.model}: multiplier {m:+g} was not swept "
                                  f"(swept: {', '.join(f'{x:+g}' for x in table.multipliers)})")
        return m
    cands = [m for m in table.multipliers if m * sign > 0]
    if not cands:
        raise SteerscaleError(f"model {table.model}: no {'positive' if sign > 0 else 'negative'} multiplier swept")
    return max(cands, key=abs)


@dataclass
class Peak:
    """The peak layer for one multiplier sign: chosen on validation items, effect reported on test items.

    The layer is the one with the largest movement s·Δ (s = sign of the multiplier) on the validation
    items. When no layer moves the intended way there, it is still the "least wrong" layer, and
    ``right_way`` (the test interval of Δ lies on the multiplier's side of 0) is False: claims must
    check ``right_way``, never only ``significant``."""

    sign: str  # "positive" | "negative"
    multiplier: float
    layer: int
    depth: float  # layer / n_layers
    depth_alt: float  # layer / (n_layers - 1)
    delta_val: float  # Δ at the chosen layer on the validation items (selection-biased; not for reporting)
    delta: float  # Δ at the chosen layer on the test items
    ci_low: float
    ci_high: float
    p: float  # p(behaviour) at the peak, test items
    depth_ci_low: float  # bootstrap over validation items of the selected depth
    depth_ci_high: float
    selection_stability: float  # fraction of validation resamples that select the same layer
    frac_wrong_way: float  # test items whose score moves against the multiplier's sign at this layer
    n_val: int
    n_test: int
    in_sample: bool = False  # True: layer chosen and reported on the same items (CAA protocol), optimistic
    screened: bool = False  # True: a gradient screen left layers unmeasured; the peak is the best measured layer
    n_measured: int | None = None  # with a screen: layers measured exactly (confirmed + spot-checked), of n_layers

    @property
    def selection_text(self) -> str:
        """'' without a screen; else how the layer was chosen, e.g. 'the best of 7 exactly measured layers of 30
        (gradient screen; the other layers were not measured)'."""
        if not self.screened:
            return ""
        return (f"the best of {self.n_measured} exactly measured layers (gradient screen; the other layers were "
                f"not measured)")

    @property
    def s(self) -> int:
        return 1 if self.multiplier > 0 else -1

    @property
    def significant(self) -> bool:
        """The test interval of Δ excludes 0 (either side)."""
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def right_way(self) -> bool:
        """The test interval of Δ lies on the multiplier's side of 0: a real effect in the intended direction."""
        return self.ci_low > 0 if self.multiplier > 0 else self.ci_high < 0

    @property
    def expected_direction(self) -> bool:
        return (self.delta > 0) == (self.multiplier > 0)

    @property
    def move(self) -> float:
        """s·Δ on the test items: movement in the multiplier's direction (negative = the wrong way)."""
        return self.s * self.delta

    @property
    def move_ci(self) -> tuple[float, float]:
        """Interval of s·Δ (the interval of Δ, mirrored for −m; never folded at 0)."""
        return (self.ci_low, self.ci_high) if self.s > 0 else (-self.ci_high, -self.ci_low)


def find_peak(table: ItemTable, sign: int, val_idx, test_idx, multiplier: float | None = None,
              n_boot: int = 1000, seed: int = 0, in_sample: bool = False) -> Peak:
    """Layer with the largest movement s·Δ for this sign on the validation items; Δ there on the test items.

    ``in_sample=True`` allows val_idx and test_idx to be the same items (CAA's protocol: optimistic, the
    layer is picked on the items it is reported on); otherwise overlapping splits are an error."""
    m = _sign_multiplier(table, sign, multiplier)
    s = 1.0 if m > 0 else -1.0
    j = table.multipliers.index(m)
    d = table.score[:, j, :] - table.baseline[None, :]  # [L, n]
    val_idx, test_idx = np.asarray(val_idx), np.asarray(test_idx)
    if not in_sample and set(val_idx.tolist()) & set(test_idx.tolist()):
        raise SteerscaleError("validation and test items overlap")
    dv = d[:, val_idx].mean(1)
    i = int(np.argmax(s * dv))
    layer = table.layers[i]
    # uncertainty of the choice itself: re-select on resampled validation items
    wv = bootstrap_weights(len(val_idx), n_boot, seed + 1)
    sel = np.argmax(s * (d[:, val_idx] @ wv.T), axis=0)  # [B]
    sel_depth = np.array([table.depth(table.layers[k]) for k in sel])
    dlo, dhi = percentile_ci(sel_depth)
    wt = bootstrap_weights(len(test_idx), n_boot, seed + 2)
    dt = d[i, test_idx]
    lo, hi = percentile_ci(wt @ dt)
    moved = dt * s
    return Peak(
        sign="positive" if sign > 0 else "negative", multiplier=m, layer=layer, depth=table.depth(layer),
        depth_alt=table.depth_alt(layer), delta_val=float(dv[i]), delta=float(dt.mean()), ci_low=lo, ci_high=hi,
        p=float(table.score[i, j, test_idx].mean()), depth_ci_low=dlo, depth_ci_high=dhi,
        selection_stability=float(np.mean(sel == i)), frac_wrong_way=float(np.mean(moved < -1e-6)),
        n_val=len(val_idx), n_test=len(test_idx), in_sample=in_sample,
    )


def wrong_way_layers(table: ItemTable, level: float = LEVEL) -> dict[str, list[dict]]:
    """Per sign, the (layer, multiplier) points where p moved against the multiplier over all items: −m raised p
    or +m lowered it, with Δ beyond 0 at `level` after a Bonferroni correction over the layers swept (normal
    approximation to the mean per-item difference), so a 30-layer sweep does not list noise. Reported beside
    the peaks, never as one."""
    out: dict[str, list[dict]] = {"negative": [], "positive": []}
    k = max(len(table.layers), 1)
    z = NormalDist().inv_cdf(1 - (1 - level) / (2 * k))
    n = table.n_items
    for j, m in enumerate(table.multipliers):
        if m == 0:
            continue
        d = table.score[:, j, :] - table.baseline[None, :]  # [L, n]
        mean = d.mean(1)
        se = d.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(mean), np.inf)
        for i, layer in enumerate(table.layers):
            lo, hi = mean[i] - z * se[i], mean[i] + z * se[i]
            if (m > 0 and hi < 0) or (m < 0 and lo > 0):
                out["positive" if m > 0 else "negative"].append(
                    {"layer": layer, "depth": table.depth(layer), "multiplier": m, "delta": float(mean[i]),
                     "delta_low": float(lo), "delta_high": float(hi), "level": level, "bonferroni_k": k})
    return out
