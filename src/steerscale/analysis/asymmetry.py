"""Asymmetry: movement under −m vs under +m, each at its own peak, in probability and in log-odds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SteerscaleError
from ..stats import LEVEL, bootstrap_weights, percentile_ci
from .effects import _logit
from .items import ItemTable
from .peaks import Peak


@dataclass
class Asymmetry:
    """Movement under −m vs under +m at each sign's peak layer, on the test items, with paired bootstrap
    intervals, in probability and in log-odds of the mean score.

    ``move_negative`` = −Δ(−m), ``move_positive`` = +Δ(+m): positive when p moved the way the multiplier
    asks, negative when it moved the wrong way (never |Δ|). The log-odds terms are
    logit(mean p(L, m)) − logit(mean p(0)), signed the same way; they take out the headroom that the
    baseline leaves to each direction."""

    magnitude: float
    layer_negative: int
    layer_positive: int
    move_negative: float
    move_positive: float
    ratio: float  # move_negative / move_positive (∞ when move_positive <= 0 < move_negative)
    ratio_low: float
    ratio_high: float
    diff: float  # move_negative − move_positive
    diff_low: float
    diff_high: float
    n_test: int
    baseline: float = float("nan")  # mean p(0) on the test items
    logodds_negative: float = float("nan")
    logodds_positive: float = float("nan")
    logodds_ratio: float = float("nan")
    logodds_diff: float = float("nan")
    logodds_diff_low: float = float("nan")
    logodds_diff_high: float = float("nan")

    @property
    def abs_negative(self) -> float:  # old name, kept for callers; it is the signed movement
        return self.move_negative

    @property
    def abs_positive(self) -> float:
        return self.move_positive


def _ratio(num, den):
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, np.nan))


def asymmetry(table: ItemTable, neg: Peak, pos: Peak, test_idx, n_boot: int = 1000, seed: int = 0) -> Asymmetry:
    if abs(neg.multiplier) != abs(pos.multiplier):
        raise SteerscaleError(f"asymmetry needs ±m of the same size, got {neg.multiplier:+g} and {pos.multiplier:+g}")
    test_idx = np.asarray(test_idx)
    jn, jp = table.multipliers.index(neg.multiplier), table.multipliers.index(pos.multiplier)
    ln, lp = table.layers.index(neg.layer), table.layers.index(pos.layer)
    sn, sp, b = table.score[ln, jn, test_idx], table.score[lp, jp, test_idx], table.baseline[test_idx]
    w = bootstrap_weights(len(test_idx), n_boot, seed + 3)  # the same resampled items for every term
    bn, bp, bb = w @ sn, w @ sp, w @ b
    mn, mp = bb - bn, bp - bb  # movement in each multiplier's direction
    m_n, m_p = float(b.mean() - sn.mean()), float(sp.mean() - b.mean())
    ratio = float(_ratio(m_n, m_p))
    rb = _ratio(mn, mp)
    rb = rb[~np.isnan(rb)]
    # percentiles over the ratio with infinities kept (they sort last)
    qs = (np.quantile(np.sort(rb), [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2], method="inverted_cdf")
          if rb.size else [float("nan")] * 2)
    dlo, dhi = percentile_ci(mn - mp)
    ln_, lp_ = _logit(b.mean()) - _logit(sn.mean()), _logit(sp.mean()) - _logit(b.mean())
    lnb, lpb = _logit(bb) - _logit(bn), _logit(bp) - _logit(bb)
    llo, lhi = percentile_ci(lnb - lpb)
    return Asymmetry(abs(neg.multiplier), neg.layer, pos.layer, m_n, m_p, ratio, float(qs[0]), float(qs[1]),
                     m_n - m_p, dlo, dhi, len(test_idx), baseline=float(b.mean()),
                     logodds_negative=float(ln_), logodds_positive=float(lp_),
                     logodds_ratio=float(_ratio(ln_, lp_)), logodds_diff=float(ln_ - lp_),
                     logodds_diff_low=llo, logodds_diff_high=lhi)
