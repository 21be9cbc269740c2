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

Layout: ``laws`` (the forms and the paper's constants), ``points`` (:class:`ScalingPoint`, protocols),
``fits`` (one form: :func:`fit_model`, :func:`aicc`, :func:`band`), ``comparison`` (:func:`fit_scaling`,
:func:`check_scaling_claim`) and ``imported`` (results tables).
"""

from __future__ import annotations

from .comparison import ScalingResult, check_scaling_claim, fit_protocol, fit_scaling
from .fits import Fit, aicc, band, fit_model
from .imported import (BUILTIN_NOTES, BUILTIN_TABLES, IMPORT_OPTIONAL, IMPORT_REQUIRED, imported_points,
                       imported_summary, load_results_table, parse_n_params, validate_table)
from .laws import AICC_MARGIN, MODELS, PAPER, PAPER_SOURCE, exp_decay, linear, log_linear, paper_curve, power_law
from .points import DEFAULT_PROTOCOL, PROTOCOLS, ScalingPoint, point_from_analysis

__all__ = [
    "ScalingResult", "check_scaling_claim", "fit_protocol", "fit_scaling", "Fit", "aicc", "band", "fit_model",
    "BUILTIN_NOTES", "BUILTIN_TABLES", "IMPORT_OPTIONAL", "IMPORT_REQUIRED", "imported_points", "imported_summary",
    "load_results_table", "parse_n_params", "validate_table", "AICC_MARGIN", "MODELS", "PAPER", "PAPER_SOURCE",
    "exp_decay", "linear", "log_linear", "paper_curve", "power_law", "DEFAULT_PROTOCOL", "PROTOCOLS", "ScalingPoint",
    "point_from_analysis",
]
