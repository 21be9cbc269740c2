"""The one bootstrap: seeded percentile intervals over items, used by every stage that reports an interval.

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
