"""How the peak steering effect changes with model size: fits, intervals, model comparison, imported results.

The paper's law: y = a + b·exp(−c·x), x = parameters in billions, y = the peak
effect (a = 0.081, b = 2.4, c = 0.42, fitted on Llama-2 7B/13B/70B). Our y is the
peak *movement* s·Δ (s = the multiplier's sign: how far p moved the way the
multiplier asks; negative = the wrong way), never |Δ|, with its interval as
measured (not folded at 0).

Beside the exponential we fit a power law y = a·x^b, a line on log x
y = a + b·ln x and a line y = a + b·x, and compare them by AICc (small-sample
AIC). When every point has a standard error the fits are weighted least squares
(chi-square with known errors: AICc = chi² + 2k + 2k(k+1)/(n−k−1), defined for
n ≥ k + 2, so the 3-parameter law needs 5 points); otherwise unweighted, with the
noise level as one more parameter (n ≥ k + 3: 6 points). The paper's form is
"supported" only when its AICc is lower than every other form's by at least
``AICC_MARGIN`` (2), plain AIC agrees, and it decays (b > 0, c > 0); see :func:`check_scaling_claim`.
Leave-one-out error is given beside it. With fewer points than a model's
parameters we do not fit it: the result says "not enough points".

Protocols: every point carries the protocol that produced it (``steerscale-default``
for our held-out peaks, ``caa`` for CAA's published numbers and for runs with the
``caa`` preset: CAA-rescaled vectors, steering from the instruction end, layers
picked on the test items). A fit uses points of one protocol only; the others are
plotted, not fitted.

Intervals: a parametric bootstrap that redraws each point from a normal with the
point's own standard error (from its interval), refitting each time; points
without an interval fall back to a residual bootstrap.

Imported results (published numbers, other runs) are a small CSV or JSON table
with columns ``model, n_params, layer, multiplier, score`` and optionally
``n_items, ci_low, ci_high, source, protocol``; a row with multiplier 0 (layer may be empty) is the
baseline. See :func:`load_results_table`.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import SteerscaleError

PAPER = {"a": 0.081, "b": 2.4, "c": 0.42}
PAPER_SOURCE = "arXiv 2507.11771 (Llama-2 7B/13B/70B)"
AICC_MARGIN = 2.0  # the paper's form must beat every other form's AICc by this much to be "supported"
DEFAULT_PROTOCOL = "steerscale-default"
PROTOCOLS = {
    DEFAULT_PROTOCOL: "steerscale defaults: raw mean-difference vectors, steering every position, peak layer "
                      "chosen on validation items and reported on held-out test items",
    "caa": "CAA (Rimsky et al.): vectors rescaled to the mean norm across 7 behaviours, steering from the "
           "instruction end, layers picked on the test items (in-sample)",
}


def exp_decay(x, a, b, c):
    return a + b * np.exp(-c * np.asarray(x, dtype=float))


def power_law(x, a, b):
    return a * np.power(np.asarray(x, dtype=float), b)


def log_linear(x, a, b):
    return a + b * np.log(np.asarray(x, dtype=float))


def linear(x, a, b):
    return a + b * np.asarray(x, dtype=float)


def paper_curve(x):
    return exp_decay(x, PAPER["a"], PAPER["b"], PAPER["c"])


MODELS = {
    "exp": (exp_decay, ("a", "b", "c"), "y = a + b·exp(−c·x)"),
    "power": (power_law, ("a", "b"), "y = a·x^b"),
    "loglinear": (log_linear, ("a", "b"), "y = a + b·ln x"),
    "linear": (linear, ("a", "b"), "y = a + b·x"),
}


@dataclass
class ScalingPoint:
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


@dataclass
class Fit:
    name: str  # exp | power | loglinear | linear
    formula: str
    status: str  # "ok" | "not enough points" | "failed"
    n_points: int
    params: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)  # param -> [low, high]
    aic: float | None = None
    aicc: float | None = None
    weighted: bool = False  # weighted by the points' standard errors
    loo_rmse: float | None = None
    rss: float | None = None
    n_boot_ok: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def predict(self, x):
        f = MODELS[self.name][0]
        return f(x, *[self.params[k] for k in MODELS[self.name][1]])


def _p0(name: str, x, y):
    if name == "exp":
        return [max(float(np.min(y)), 1e-3), max(float(np.max(y) - np.min(y)), 1e-3) * 2, 0.5]
    if name == "power":
        return [max(float(np.mean(y)), 1e-3), -0.3]
    return [float(np.mean(y)), 0.0]


def _curve_fit(name: str, x, y, sigma=None):
    from scipy.optimize import curve_fit

    f, names, _ = MODELS[name]
    bounds = (-np.inf, np.inf)
    if name == "exp":
        bounds = ([-np.inf, -np.inf, 0.0], [np.inf, np.inf, 50.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        popt, _ = curve_fit(f, x, y, p0=_p0(name, x, y), bounds=bounds, maxfev=20000, sigma=sigma,
                            absolute_sigma=sigma is not None)
    return popt


def aicc(resid, k: int, se=None) -> tuple[float | None, float | None]:
    """(AIC, AICc) of a least-squares fit with k curve parameters. With standard errors `se` (weighted, known
    noise): −2 log L = chi² (+ a constant shared by every form). Without: the noise level is estimated, one
    more parameter. AICc is None where it is undefined (too few points for the correction)."""
    resid = np.asarray(resid, dtype=float)
    n = len(resid)
    if se is not None:
        aic = float(np.sum((resid / np.asarray(se, dtype=float)) ** 2) + 2 * k)
        kk = k
    else:
        kk = k + 1
        aic = float(n * math.log(max(float(np.sum(resid ** 2)), 1e-300) / n) + 2 * kk)
    c = float(aic + 2 * kk * (kk + 1) / (n - kk - 1)) if n - kk - 1 > 0 else None
    return aic, c


def _weights(se) -> np.ndarray | None:
    """The points' standard errors when every point has a positive one, else None (unweighted)."""
    if se is None or not len(se) or any(s is None or not np.isfinite(s) or s <= 0 for s in se):
        return None
    return np.asarray(se, dtype=float)


def fit_model(name: str, x, y, se=None, n_boot: int = 1000, seed: int = 0) -> Fit:
    """Fit one functional form (weighted by `se` when every point has one); intervals by parametric (or
    residual) bootstrap; AIC, AICc and leave-one-out error."""
    f, names, formula = MODELS[name]
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    sig = _weights(se)
    n, k = len(x), len(names)
    if n < k:
        return Fit(name, formula, "not enough points", n,
                   message=f"{n} point(s) for {k} parameters: no fit (need at least {k}; {k + 1}+ to compare models)")
    if name == "power" and (np.any(y <= 0) or np.any(x <= 0)):
        return Fit(name, formula, "failed", n, message="a power law needs positive x and y")
    try:
        popt = _curve_fit(name, x, y, sig)
    except (RuntimeError, ValueError) as e:
        return Fit(name, formula, "failed", n, message=f"fit did not converge ({e})")
    resid = y - f(x, *popt)
    rss = float(np.sum(resid ** 2))
    fit = Fit(name, formula, "ok", n, params=dict(zip(names, map(float, popt))), rss=rss, weighted=sig is not None)
    if n > k:
        fit.aic, fit.aicc = aicc(resid, k, sig)
        if fit.aicc is None:
            fit.message = (f"{n} points for {k} parameters: too few for AICc (needs {k + 2 if sig is not None else k + 3}"
                           f"{'' if sig is not None else ' without standard errors'})")
    else:
        fit.message = (f"{n} points for {k} parameters: no residual degrees of freedom, so no AIC or "
                       "leave-one-out error; the curve is not a test of the form")
    if n >= k + 1:
        errs = []
        for i in range(n):
            m = np.arange(n) != i
            try:
                pi = _curve_fit(name, x[m], y[m], None if sig is None else sig[m])
                errs.append(float(f(x[i:i + 1], *pi)[0] - y[i]))
            except (RuntimeError, ValueError):
                errs.append(float("nan"))
        if np.isfinite(errs).all():
            fit.loo_rmse = float(np.sqrt(np.mean(np.square(errs))))
    # bootstrap intervals
    rng = np.random.default_rng(seed)
    have_se = sig is not None
    ses = sig
    if not have_se and n <= k:
        fit.message += "; no interval (points have no uncertainty and no residuals)"
        return fit
    draws = []
    fitted = f(x, *popt)
    for _ in range(n_boot):
        yb = y + rng.normal(0, 1, n) * ses if have_se else fitted + rng.choice(resid, n, replace=True)
        if name == "power" and np.any(yb <= 0):
            yb = np.maximum(yb, 1e-6)
        try:
            draws.append(_curve_fit(name, x, yb, sig))
        except (RuntimeError, ValueError):
            continue
    fit.n_boot_ok = len(draws)
    if draws:
        d = np.array(draws)
        fit.intervals = {nm: [float(np.quantile(d[:, i], 0.025)), float(np.quantile(d[:, i], 0.975))]
                         for i, nm in enumerate(names)}
        fit._draws = d  # for bands in plots; not serialised
    return fit


def band(fit: Fit, xs, level: float = 0.95):
    """Pointwise interval of the fitted curve from the bootstrap draws (or None)."""
    d = getattr(fit, "_draws", None)
    if d is None or not len(d):
        return None
    f = MODELS[fit.name][0]
    ys = np.array([f(xs, *row) for row in d])
    a = (1 - level) / 2
    return np.nanquantile(ys, a, axis=0), np.nanquantile(ys, 1 - a, axis=0)


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


# ---------------------------------------------------------------- imported results

IMPORT_REQUIRED = ("model", "n_params", "layer", "multiplier", "score")
IMPORT_OPTIONAL = ("n_items", "ci_low", "ci_high", "source", "protocol")

# Published CAA numbers (Rimsky et al.), p(refusal) on its 50 A/B test items, no system prompt. Protocol "caa":
# vectors rescaled to the mean norm across 7 behaviours, steered from the instruction end, layers picked on the
# test items; comparable with runs that use the `caa` preset, not with the default protocol.
BUILTIN_TABLES = {
    "caa-llama2-chat": [
        {"model": "Llama-2-7b-chat (CAA)", "n_params": 6.74e9, "layer": None, "multiplier": 0, "score": 0.744, "n_items": 50, "protocol": "caa"},
        {"model": "Llama-2-7b-chat (CAA)", "n_params": 6.74e9, "layer": 11, "multiplier": 1, "score": 0.928, "n_items": 50, "protocol": "caa"},
        {"model": "Llama-2-7b-chat (CAA)", "n_params": 6.74e9, "layer": 13, "multiplier": -1, "score": 0.423, "n_items": 50, "protocol": "caa"},
        {"model": "Llama-2-13b-chat (CAA)", "n_params": 13.0e9, "layer": None, "multiplier": 0, "score": 0.780, "n_items": 50, "protocol": "caa"},
        {"model": "Llama-2-13b-chat (CAA)", "n_params": 13.0e9, "layer": 13, "multiplier": 1, "score": 0.885, "n_items": 50, "protocol": "caa"},
        {"model": "Llama-2-13b-chat (CAA)", "n_params": 13.0e9, "layer": 14, "multiplier": -1, "score": 0.559, "n_items": 50, "protocol": "caa"},
    ],
}
BUILTIN_NOTES = {"caa-llama2-chat": "CAA (Rimsky et al.) published p(refusal), 50 A/B items; layers as published"}

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_n_params(value, where: str) -> float:
    """A parameter count: a number (raw count, e.g. 6.74e9) or a string with a suffix ('7B', '135M')."""
    if isinstance(value, bool) or value is None or value == "":
        raise SteerscaleError(f"{where}: field 'n_params' is empty; expected a count like 6.74e9 or '7B'")
    if isinstance(value, str):
        s = value.strip().replace(",", "").replace("_", "")
        m = re.fullmatch(r"([0-9.eE+-]+)\s*([kKmMbBgGtT]?)", s)
        if not m:
            raise SteerscaleError(f"{where}: field 'n_params' is {value!r}; expected a count like 6.74e9 or '7B'")
        try:
            v = float(m.group(1)) * (_SUFFIX[m.group(2).lower()] if m.group(2) else 1.0)
        except ValueError:
            raise SteerscaleError(f"{where}: field 'n_params' is {value!r}; expected a count like 6.74e9 or '7B'") from None
    else:
        v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise SteerscaleError(f"{where}: field 'n_params' is {value!r}; expected a positive count")
    if v < 1e5:
        raise SteerscaleError(f"{where}: field 'n_params' is {value!r}, which reads as {v:g} parameters; "
                              f"for billions write {value}e9 or '{value}B'")
    return v


def _num(row: dict, key: str, where: str, required: bool, lo=None, hi=None, integer=False):
    v = row.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            raise SteerscaleError(f"{where}: field {key!r} is missing or empty")
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise SteerscaleError(f"{where}: field {key!r} is {v!r}; expected a number") from None
    if not np.isfinite(f):
        raise SteerscaleError(f"{where}: field {key!r} is {v!r}; expected a finite number")
    if integer and f != int(f):
        raise SteerscaleError(f"{where}: field {key!r} is {v!r}; expected a whole number")
    if (lo is not None and f < lo) or (hi is not None and f > hi):
        raise SteerscaleError(f"{where}: field {key!r} is {v!r}; expected a value in [{lo}, {hi}]")
    return int(f) if integer else f


def validate_table(records: list, name: str) -> list[dict]:
    if not isinstance(records, list):
        raise SteerscaleError(f"{name}: expected a list of rows, got {type(records).__name__}")
    if not records:
        raise SteerscaleError(f"{name}: no rows; expected columns {', '.join(IMPORT_REQUIRED)}")
    out = []
    for i, r in enumerate(records, 1):
        where = f"{name}: row {i}"
        if not isinstance(r, dict):
            raise SteerscaleError(f"{where}: expected an object with fields {', '.join(IMPORT_REQUIRED)}")
        for k in IMPORT_REQUIRED:
            if k not in r:
                raise SteerscaleError(f"{where}: missing field {k!r} (required: {', '.join(IMPORT_REQUIRED)})")
        model = str(r["model"]).strip()
        if not model:
            raise SteerscaleError(f"{where}: field 'model' is empty")
        m = _num(r, "multiplier", where, True)
        row = {
            "model": model, "n_params": parse_n_params(r["n_params"], where),
            "layer": _num(r, "layer", where, m != 0, lo=0, integer=True), "multiplier": m,
            "score": _num(r, "score", where, True, 0.0, 1.0),
            "n_items": _num(r, "n_items", where, False, lo=1, integer=True),
            "ci_low": _num(r, "ci_low", where, False, 0.0, 1.0), "ci_high": _num(r, "ci_high", where, False, 0.0, 1.0),
            "source": str(r.get("source") or name),
            "protocol": str(r.get("protocol") or DEFAULT_PROTOCOL).strip(),
        }
        if (row["ci_low"] is None) != (row["ci_high"] is None):
            raise SteerscaleError(f"{where}: give both 'ci_low' and 'ci_high' or neither")
        if row["ci_low"] is not None and not row["ci_low"] <= row["score"] <= row["ci_high"]:
            raise SteerscaleError(f"{where}: field 'score' {row['score']} is outside [ci_low, ci_high] = "
                                  f"[{row['ci_low']}, {row['ci_high']}]")
        out.append(row)
    by_model: dict[str, list[dict]] = {}
    for row in out:
        by_model.setdefault(row["model"], []).append(row)
    for model, rows in by_model.items():
        if len({r["protocol"] for r in rows}) > 1:
            raise SteerscaleError(f"{name}: model {model!r} has rows with different 'protocol'")
        if len({r["n_params"] for r in rows}) > 1:
            raise SteerscaleError(f"{name}: model {model!r} has rows with different 'n_params'")
        if not any(r["multiplier"] == 0 for r in rows):
            raise SteerscaleError(f"{name}: model {model!r} has no baseline row (multiplier 0); effects need one")
        if len({r["score"] for r in rows if r["multiplier"] == 0}) > 1:
            raise SteerscaleError(f"{name}: model {model!r} has baseline rows (multiplier 0) with different scores")
    return out


def load_results_table(source) -> list[dict]:
    """Read an imported results table: a built-in name (``caa-llama2-chat``), a CSV file with a header row,
    or a JSON file holding a list of row objects (or ``{"rows": [...]}``)."""
    if str(source) in BUILTIN_TABLES:
        return validate_table([dict(r, source=str(source)) for r in BUILTIN_TABLES[str(source)]], str(source))
    path = Path(source)
    if not path.is_file():
        raise SteerscaleError(f"{path}: no such file (expected a CSV or JSON results table, or one of "
                              f"{', '.join(BUILTIN_TABLES)})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SteerscaleError(f"{path}: not UTF-8 text") from None
    if not text.strip():
        raise SteerscaleError(f"{path}: file is empty; expected columns {', '.join(IMPORT_REQUIRED)}")
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SteerscaleError(f"{path}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            data = data["rows"]
        return validate_table(data, str(path))
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [k for k in IMPORT_REQUIRED if k not in header]
    if missing:
        raise SteerscaleError(f"{path}: header lacks column(s) {', '.join(missing)} (found: {', '.join(header)})")
    rows = []
    for r in reader:
        if None in r:
            raise SteerscaleError(f"{path}: row {len(rows) + 1}: more fields than the header has columns")
        rows.append({k.strip(): v for k, v in r.items()})
    return validate_table(rows, str(path))


def imported_points(rows: list[dict], include_in_fit: bool = True, which: str = "max") -> list[ScalingPoint]:
    """One point per imported model: the largest movement s·Δ (p moved the way the multiplier asks) among its
    steered rows of the requested sign(s); a row that moved p the wrong way is never chosen over one that moved
    it the right way.

    The layer was chosen by whoever published it, usually on the same items: unlike our own peaks it is
    not held out, which the point's note says. Interval for Δ: from the rows' ci_low/ci_high when given
    (combined in quadrature, ignoring the pairing), else from n_items with the worst-case
    standard error sqrt(p(1−p)/n) of a mean of values in [0, 1]; else none. Not folded at 0.
    """
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    out = []
    for model, rs in by_model.items():
        base = next(r for r in rs if r["multiplier"] == 0)
        steered = [r for r in rs if r["multiplier"] != 0 and (which == "max" or
                   (which == "negative") == (r["multiplier"] < 0))]
        if not steered:
            continue
        move = lambda r: math.copysign(1.0, r["multiplier"]) * (r["score"] - base["score"])
        best = max(steered, key=move)
        y = move(best)
        se = None
        if best["ci_low"] is not None and base["ci_low"] is not None:
            se = math.hypot((best["ci_high"] - best["ci_low"]) / 3.92, (base["ci_high"] - base["ci_low"]) / 3.92)
        elif best["n_items"] and base["n_items"]:
            se = math.hypot(math.sqrt(best["score"] * (1 - best["score"]) / best["n_items"]),
                            math.sqrt(base["score"] * (1 - base["score"]) / base["n_items"]))
        lo = hi = None
        if se is not None:
            lo, hi = y - 1.96 * se, y + 1.96 * se
        out.append(ScalingPoint(model, base["n_params"] / 1e9, y, lo, hi, source=best["source"],
                                layer=best["layer"], multiplier=best["multiplier"], include_in_fit=include_in_fit,
                                note="imported; peak layer as published (not held out)",
                                protocol=best.get("protocol", DEFAULT_PROTOCOL)))
    return out


def imported_summary(rows: list[dict]) -> list[dict]:
    """Per imported model: baseline and each steered row's Δ (for tables beside our own results)."""
    out = []
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    for model, rs in by_model.items():
        base = next(r for r in rs if r["multiplier"] == 0)
        for r in sorted(rs, key=lambda r: r["multiplier"]):
            out.append({"model": model, "n_params_b": r["n_params"] / 1e9, "layer": r["layer"],
                        "multiplier": r["multiplier"], "score": r["score"], "delta": r["score"] - base["score"],
                        "n_items": r["n_items"], "source": r["source"],
                        "protocol": r.get("protocol", DEFAULT_PROTOCOL)})
    return out


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
