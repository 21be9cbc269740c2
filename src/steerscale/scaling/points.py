"""Scaling points (one model size, its peak movement s·Δ and interval) and the protocols that produced them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_PROTOCOL = "steerscale-default"
PROTOCOLS = {
    DEFAULT_PROTOCOL: "steerscale defaults: raw mean-difference vectors, steering every position, peak layer "
                      "chosen on validation items and reported on held-out test items",
    "caa": "CAA (Rimsky et al.): vectors rescaled to the mean norm across 7 behaviours, steering from the "
           "instruction end, layers picked on the test items (in-sample)",
}


@dataclass
class ScalingPoint:
    """One model size in a scaling fit: its peak movement s·Δ (`y`) with the interval as measured (not folded at
    0), where it came from (`source`, `protocol`) and whether the fit uses it."""

    model: str
    n_params_b: float
    y: float  # peak movement s·Δ (negative = the wrong way)
    ci_low: float | None = None
    ci_high: float | None = None
    source: str = "sweep"  # "sweep" or the imported file's name
    layer: int | None = None
    multiplier: float | None = None
    include_in_fit: bool = True
    note: str = ""
    protocol: str = DEFAULT_PROTOCOL

    @property
    def se(self) -> float | None:
        if self.ci_low is None or self.ci_high is None or not np.isfinite([self.ci_low, self.ci_high]).all():
            return None
        return max((self.ci_high - self.ci_low) / (2 * 1.959964), 0.0)


def point_from_analysis(a, which: str = "max") -> ScalingPoint | None:
    """Our own model's point: the held-out peak movement s·Δ (layer chosen on validation items, Δ on test
    items; for "max" the sign is chosen on the validation items too), with its interval as measured."""
    p = a.peak_for(which)
    if p is None:
        return None
    lo, hi = p.move_ci
    how = ("peak chosen and reported on the same items (in-sample)" if p.in_sample else
           "peak chosen on validation items, s·Δ on test items")
    return ScalingPoint(a.model, a.n_params / 1e9, p.move, lo, hi, source="sweep", layer=p.layer,
                        multiplier=p.multiplier, note=how, protocol=getattr(a, "protocol", DEFAULT_PROTOCOL))
