"""All forms fitted to the points of one protocol, compared by AICc and AIC, and the verdict on the paper's law."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .fits import Fit, _weights, fit_model
from .laws import AICC_MARGIN, MODELS, PAPER, PAPER_SOURCE, paper_curve
from .points import DEFAULT_PROTOCOL, ScalingPoint


@dataclass
class ScalingResult:
    points: list[ScalingPoint]
    fits: dict[str, Fit]
    y_definition: str
    best: str | None  # the form with the lowest AICc (None when fewer than two forms have one)
    paper: dict = field(default_factory=lambda: dict(PAPER))
    paper_at_points: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    protocol: str = DEFAULT_PROTOCOL  # the protocol of the points in the fit

    def to_dict(self) -> dict:
        return {
            "y_definition": self.y_definition,
            "protocol": self.protocol,
            "points": [asdict(p) for p in self.points],
            "fits": {k: asdict(v) for k, v in self.fits.items()},
            "best": self.best,
            "aicc_margin": AICC_MARGIN,
            "paper": self.paper,
            "paper_source": PAPER_SOURCE,
            "paper_at_points": self.paper_at_points,
            "notes": self.notes,
        }


def fit_protocol(points: list[ScalingPoint]) -> str:
    """The protocol a fit uses: that of our own sweep points when there are any, else the most common one among
    the points marked for the fit (the default protocol when none is)."""
    ours = [p.protocol for p in points if p.source == "sweep" and p.include_in_fit]
    pool = ours or [p.protocol for p in points if p.include_in_fit]
    if not pool:
        return DEFAULT_PROTOCOL
    return max(dict.fromkeys(pool), key=pool.count)


def fit_scaling(points: list[ScalingPoint], n_boot: int = 1000, seed: int = 0,
                y_definition: str = "peak movement s·Δ", protocol: str | None = None) -> ScalingResult:
    """Fit every form to the points marked include_in_fit that share one protocol (`protocol`, or
    :func:`fit_protocol`'s choice); points of another protocol stay in ``points`` with include_in_fit False and
    a note. ``best`` is the form with the lowest AICc."""
    protocol = protocol or fit_protocol(points)
    points = list(points)
    notes = []
    for i, p in enumerate(points):
        if p.include_in_fit and p.protocol != protocol:
            points[i] = replace(p, include_in_fit=False,
                                note=(p.note + "; " if p.note else "") + f"protocol {p.protocol!r} differs from the "
                                f"fit's {protocol!r}: plotted, not fitted")
            notes.append(f"{p.model}: protocol {p.protocol!r}, not {protocol!r}; left out of the fit (like with like)")
    use = sorted([p for p in points if p.include_in_fit and np.isfinite(p.y)], key=lambda p: p.n_params_b)
    x = np.array([p.n_params_b for p in use])
    y = np.array([p.y for p in use])
    se = [p.se for p in use]
    fits = {name: fit_model(name, x, y, se, n_boot, seed) for name in MODELS}
    if len({round(v, 6) for v in x}) < len(x):
        notes.append("several points share a model size")
    if use and _weights(se) is None:
        notes.append("some points have no standard error: fits are unweighted and AICc counts the noise level as a "
                     "parameter")
    comparable = [f for f in fits.values() if f.ok and f.aicc is not None]
    best = min(comparable, key=lambda f: f.aicc).name if len(comparable) >= 2 else None
    if best is None:
        notes.append(f"{len(use)} point(s) in the fit: too few to compare the forms by AICc")
    return ScalingResult(points, fits, y_definition, best, paper_at_points=[float(paper_curve(p.n_params_b))
                                                                              for p in points], notes=notes,
                         protocol=protocol)


def check_scaling_claim(res: ScalingResult) -> dict:
    """Paper: the peak effect decays with size as a + b·exp(−c·x).

    Supported only when the exponential is *preferred*: its AICc is lower than every other fitted form's
    (power law, log-linear, linear) by at least ``AICC_MARGIN``, plain AIC agrees by the same margin, and it
    decays (b > 0, c > 0). Not supported when another form beats it by the margin on both criteria, when the preferred exponential does not decay, or when the
    effect grows with size (log-linear slope interval above 0). Inconclusive otherwise, and whenever AICc
    cannot be computed for the exponential and at least one other form (fewer than 5 points with standard
    errors, 6 without)."""
    claim = "peak effect decays with model size as a + b·exp(−c·x)"
    use = [p for p in res.points if p.include_in_fit]
    e, ll = res.fits["exp"], res.fits["loglinear"]
    nums = "; ".join(f"{p.model}: {p.y:+.3f} at {p.n_params_b:.3g}B" for p in sorted(use, key=lambda p: p.n_params_b))
    nums += f" (protocol {res.protocol})" if use else ""
    if e.ok:
        nums += "; exp fit " + ", ".join(f"{k} = {v:.3g}" + (f" [{e.intervals[k][0]:.3g}, {e.intervals[k][1]:.3g}]"
                                                             if k in e.intervals else "") for k, v in e.params.items())
    aiccs = {n: f.aicc for n, f in res.fits.items() if f.ok and f.aicc is not None}
    if aiccs:
        nums += "; AICc " + ", ".join(f"{n} {v:.1f}" for n, v in sorted(aiccs.items(), key=lambda t: t[1]))
    if ll.ok and "b" in ll.intervals:
        nums += f"; log-linear slope {ll.params['b']:+.3g} [{ll.intervals['b'][0]:+.3g}, {ll.intervals['b'][1]:+.3g}]"
    out = {"claim": claim, "model": "all", "numbers": nums}
    if ll.ok and "b" in ll.intervals and ll.intervals["b"][0] > 0:
        return dict(out, verdict="not supported", why="the peak effect grows with size")
    others = {n: v for n, v in aiccs.items() if n != "exp"}
    if "exp" not in aiccs or not others:
        need = 5 if all(p.se for p in use) else 6
        return dict(out, verdict="inconclusive",
                    why=f"not enough points: {len(use)} model size(s); comparing the 3-parameter law with the other "
                        f"forms by AICc needs at least {need}")
    rival = min(others, key=others.get)
    gap = others[rival] - aiccs["exp"]  # > 0: the exponential is better
    # plain AIC beside AICc: with 5-6 points AICc's correction alone strongly favours 2-parameter forms, so a
    # verdict either way needs both criteria to agree by the margin
    gap_aic = min(f.aic for n, f in res.fits.items() if n in others) - e.aic
    if gap >= AICC_MARGIN and gap_aic >= AICC_MARGIN:
        if e.params["b"] > 0 and e.params["c"] > 0:
            return dict(out, verdict="supported",
                        why=f"the exponential is preferred: its AICc is {gap:.1f} below the next form "
                            f"({MODELS[rival][2]}; margin {AICC_MARGIN:g}, AIC agrees) and it decays (b > 0, c > 0)")
        return dict(out, verdict="not supported", why="the exponential is preferred but does not decay (b or c <= 0)")
    if gap <= -AICC_MARGIN and gap_aic <= -AICC_MARGIN:
        return dict(out, verdict="not supported",
                    why=f"the {MODELS[rival][2]} form is preferred: its AICc is {-gap:.1f} below the exponential's "
                        f"(AIC agrees)")
    return dict(out, verdict="inconclusive",
                why=f"AICc and AIC do not both separate the exponential from the other forms by {AICC_MARGIN:g} "
                    f"(AICc difference to {MODELS[rival][2]}: {gap:+.1f}, AIC: {gap_aic:+.1f})")
