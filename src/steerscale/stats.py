"""The one bootstrap: seeded percentile intervals over items, used by every stage that reports an interval
(means, NaN-dropping means, independent differences, ratios of sums such as token-weighted means).

Contract: for the same ``(n, n_boot, seed)`` every function draws the same resamples
(``numpy.random.default_rng(seed).integers(0, n, size=(n_boot, n))``), so intervals are
reproducible to the byte and paired comparisons share their resampled items when they
share a seed. Intervals are percentile intervals at ``level`` (default 95%).
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.95


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n] item indices drawn with replacement (row b = resample b)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n] resampling weights (counts / n): row b averages resample b when used as ``x @ w``."""
    idx = resample_indices(n, n_boot, seed)
    w = np.zeros((n_boot, n))
    np.add.at(w, (np.arange(n_boot)[:, None], idx), 1.0)
    return w / n


def percentile_ci(samples, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap ``samples`` (NaNs dropped; NaN bounds when none are left)."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[~np.isnan(s)]
    if s.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(s, a)), float(np.quantile(s, 1 - a))


def mean_ci(values, n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap interval over items (a single value: a zero-width interval)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    if x.size == 1 or n_boot <= 0:
        return float(x.mean()), float(x.mean()), float(x.mean())
    means = x[resample_indices(x.size, n_boot, seed)].mean(1)
    a = (1 - level) / 2
    return float(x.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def nan_mean_ci(values, n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> tuple[float, float, float]:
    """`mean_ci` of the values that are not NaN (all NaN or none: NaN mean and bounds)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    return mean_ci(x, n_boot, seed, level) if x.size else (float("nan"),) * 3


def diff_ci(a, b, n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> tuple[float, float]:
    """Interval of mean(a) - mean(b) for two *independent* samples (NaNs dropped): each is resampled on its
    own, `a` with `seed` and `b` with `seed + 1`. An empty sample gives NaN bounds. (Paired differences are
    `mean_ci(a - b)`: the same items resampled together.)"""
    a, b = (np.asarray(x, dtype=np.float64) for x in (a, b))
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if not a.size or not b.size:
        return float("nan"), float("nan")
    return percentile_ci(bootstrap_weights(a.size, n_boot, seed) @ a - bootstrap_weights(b.size, n_boot, seed + 1) @ b,
                         level)


def ratio_ci(num, den, n_boot: int = 1000, seed: int = 0, level: float = LEVEL,
             base: tuple | None = None) -> tuple[float, float, float]:
    """sum(num) / sum(den) over items (e.g. a token-weighted mean: nats and token counts per text) and its
    percentile-bootstrap interval over items (ratio of resampled sums).

    With ``base = (num0, den0)`` (the same items under another condition) the statistic is the paired
    difference num/den - num0/den0, both resampled with the same items. Fewer than 2 items or
    ``n_boot <= 0``: a zero-width interval at the point value."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if base is not None:
        base = tuple(np.asarray(x, dtype=np.float64) for x in base)

    def stat(idx):
        v = num[idx].sum(-1) / den[idx].sum(-1)
        return v if base is None else v - base[0][idx].sum(-1) / base[1][idx].sum(-1)

    point = float(stat(np.arange(len(num))))
    if len(num) < 2 or n_boot <= 0:
        return point, point, point
    return (point, *percentile_ci(stat(resample_indices(len(num), n_boot, seed)), level))
