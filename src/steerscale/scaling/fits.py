"""Fitting one functional form to scaling points: weighted least squares, AIC / AICc, leave-one-out error,
and bootstrap intervals (parametric from the points' standard errors, else residual)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .laws import MODELS


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
