"""Every plot of steerscale, written as PNG and SVG, each file atomically (``store.atomic_write_bytes``).

A plot function takes its data (aggregate rows, a ``ModelAnalysis``, a ``ScalingResult``) and a path without
suffix, writes ``path.png`` and ``path.svg`` and returns ``[png, svg]``. Figures are rendered in memory first, so
a full disk names the file and leaves no truncated plot. Sweep plots: :func:`plot_layer_sweep`,
:func:`plot_model_sweep`, :func:`plot_heatmap`; findings across models: :func:`plot_depth`,
:func:`plot_asymmetry`, :func:`plot_scaling`; open-ended: :func:`plot_tradeoff`, :func:`plot_openended_layers`;
vectors: :func:`plot_cosine_heatmap`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from ..scaling.laws import MODELS, paper_curve
from ..scaling.fits import band
from ..io.store import atomic_write_bytes

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DEPTH_NOTE = "depth = layer / n_layers (0 = first layer's output; the last layer is (n−1)/n)"
SIGN_COLORS = {"negative": "#2c6fbb", "positive": "#c0392b"}


def save_figure(fig, path) -> list[Path]:
    """Write `fig` as ``path.png`` and ``path.svg`` (each rendered in memory, then written atomically: a full disk
    names the file and leaves no truncated plot), close it, and return ``[png, svg]``. Use it for every new plot."""
    path = Path(path)
    paths = [path.with_suffix(".png"), path.with_suffix(".svg")]
    try:
        for p in paths:
            buf = io.BytesIO()
            fig.savefig(buf, format=p.suffix[1:])
            atomic_write_bytes(p, buf.getvalue())
    finally:
        plt.close(fig)
    return paths


_save = save_figure  # the old private name (steerscale.report._save)

PAPER_RANGE_B = (7.0, 70.0)  # the parameter range (billions) the paper's curve was fitted on


def interval_ylim(values, margin: float = 0.08) -> tuple[float, float]:
    """Y-limits that contain every value given (point estimates and interval ends) and zero, plus `margin` of the
    span on each side: no interval is clipped. Non-finite values are skipped."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))] + [0.0]
    lo, hi = min(vals), max(vals)
    span = max(hi - lo, 1e-3)
    return lo - margin * span, hi + margin * span


# ---------------------------------------------------------------- sweeps


def _by_multiplier(aggregate: list[dict], model: str | None = None) -> dict[float, list[dict]]:
    out: dict[float, list[dict]] = {}
    for r in aggregate:
        if model is None or r["model"] == model:
            out.setdefault(float(r["multiplier"]), []).append(r)
    return {m: sorted(rs, key=lambda r: r["layer"]) for m, rs in sorted(out.items())}


def plot_layer_sweep(aggregate: list[dict], path, title: str | None = None, behaviour: str = "refusal") -> list[Path]:
    """p(behaviour) against layer, one line per multiplier, with bootstrap 95% bands; PNG and SVG."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=130)
    groups = _by_multiplier(aggregate)
    cmap = plt.get_cmap("coolwarm")
    ms = list(groups)
    span = max((abs(m) for m in ms), default=1.0) or 1.0
    for m, rs in groups.items():
        xs = [r["layer"] for r in rs]
        color = "black" if m == 0 else cmap(0.5 + 0.5 * m / span)
        label = "m = 0 (unsteered)" if m == 0 else f"m = {m:+g}"
        ax.plot(xs, [r["score"] for r in rs], color=color, lw=1.0 if m == 0 else 1.8,
                ls="--" if m == 0 else "-", marker="" if m == 0 else "o", ms=3, label=label)
        ax.fill_between(xs, [r["ci_low"] for r in rs], [r["ci_high"] for r in rs], color=color, alpha=0.15, lw=0)
    if aggregate:
        n = aggregate[0]["n_layers"]
        ax.set_xlim(-0.5, n - 0.5)
        name = aggregate[0]["model"]
        ax.set_title(title or f"{name}: p({behaviour}) by steered layer ({aggregate[0]['n_items']} items)")
    ax.set_xlabel("layer whose output is steered (0-based)")
    ax.set_ylabel(f"p({behaviour}) = p(match) / (p(A)+p(B))")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------- findings


def effects_as_aggregate(effects: list[dict]) -> list[dict]:
    """analysis.effects rows in the shape plot_layer_sweep reads."""
    return [dict(r, score=r["p"], ci_low=r["p_low"], ci_high=r["p_high"]) for r in effects]


def plot_model_sweep(analysis, path, behaviour: str = "refusal") -> list[Path]:
    """p(behaviour) vs layer per multiplier with bands, the unsteered baseline, and the held-out peaks marked."""
    a = analysis
    title = (f"{a.model}: p({behaviour}) by steered layer ({a.n_items} items; "
             f"baseline {a.baseline['p']:.3f})")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return plot_layer_sweep(effects_as_aggregate(a.effects), Path(path), title=title, behaviour=behaviour)


def plot_heatmap(analysis, path) -> list[Path]:
    """Δ = p(L, m) − p(0) on a layer × multiplier grid (diverging colours, 0 = white)."""
    a = analysis
    ms = [m for m in a.multipliers if m != 0] or a.multipliers
    grid = np.full((len(ms), len(a.layers)), np.nan)
    for r in a.effects:
        if r["multiplier"] in ms:
            grid[ms.index(r["multiplier"]), a.layers.index(r["layer"])] = r["delta"]
    lim = max(float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 0.0, 1e-3)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.28 * len(a.layers) + 2.5), 0.5 * len(ms) + 1.8), dpi=130)
    im = ax.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_yticks(range(len(ms)), [f"{m:+g}" for m in ms])
    step = max(1, len(a.layers) // 15)
    ax.set_xticks(range(0, len(a.layers), step), [str(l) for l in a.layers[::step]])
    ax.set_xlabel("layer whose output is steered")
    ax.set_ylabel("multiplier")
    ax.set_title(f"{a.model}: effect Δ = p(L, m) − p(0)")
    fig.colorbar(im, ax=ax, label="Δ p(refusal)", fraction=0.04)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_depth(analyses, path) -> list[Path]:
    """All models on one axis: Δ against relative depth, one panel per multiplier sign, with bands."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=130, sharey=True)
    cmap = plt.get_cmap("viridis")
    for k, (sign, ax) in enumerate(zip(("negative", "positive"), axes)):
        for i, a in enumerate(analyses):
            p = a.peaks.get(sign)
            if p is None:
                continue
            rs = sorted([r for r in a.effects if r["multiplier"] == p.multiplier], key=lambda r: r["layer"])
            c = cmap(i / max(len(analyses) - 1, 1) * 0.85)
            xs = [r["depth"] for r in rs]
            ax.plot(xs, [r["delta"] for r in rs], color=c, marker="o", ms=3, label=f"{a.model} (m = {p.multiplier:+g})")
            ax.fill_between(xs, [r["delta_low"] for r in rs], [r["delta_high"] for r in rs], color=c, alpha=0.15, lw=0)
            ax.plot([p.depth], [p.delta], marker="*", ms=12, color=c, mec="black", mew=0.6, zorder=5)
        ax.axhline(0, color="black", lw=0.8)
        ax.axvspan(0.3, 0.5, color="orange", alpha=0.12, lw=0, label="paper: peak at ~0.4 depth")
        ax.set_xlim(0, 1)
        ax.set_title(f"{sign} steering")
        ax.set_xlabel("relative depth = layer / n_layers")
        ax.grid(alpha=0.3)
        if k == 0:
            ax.set_ylabel("Δ p(refusal) vs unsteered (all items)")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Effect by relative depth (★ = peak chosen on validation items; its Δ on test items)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_asymmetry(analyses, path, imported: list[dict] | None = None) -> list[Path]:
    """Movement s·Δ at the negative and the positive peak per model (test items, 95% intervals); ratio annotated."""
    labels, neg, pos, nerr, perr, ratios = [], [], [], [], [], []
    for a in analyses:
        s = a.asymmetry
        if s is None:
            continue
        pn, pp = a.peaks["negative"], a.peaks["positive"]
        labels.append(a.model)
        neg.append(s.move_negative)
        pos.append(s.move_positive)
        nerr.append(_move_err(pn))
        perr.append(_move_err(pp))
        ratios.append(f"{s.ratio:.2f} [{s.ratio_low:.2f}, {s.ratio_high:.2f}]" if math.isfinite(s.ratio_high)
                      else f"{s.ratio:.2f} [{s.ratio_low:.2f}, ∞]")
    by_model: dict[str, dict] = {}
    for r in imported or []:
        if r["multiplier"] != 0:
            by_model.setdefault(r["model"], {})[r["multiplier"]] = math.copysign(1.0, r["multiplier"]) * r["delta"]
    for model, d in by_model.items():
        ms = sorted({abs(m) for m in d})
        m = next((m for m in reversed(ms) if m in d and -m in d), None)
        if m is None:
            continue
        labels.append(f"{model}\n(published)")
        neg.append(d[-m])
        pos.append(d[m])
        nerr.append((0, 0))
        perr.append((0, 0))
        ratios.append(f"{d[-m] / d[m]:.2f}" if d[m] else "∞")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(labels) + 2), 4), dpi=130)
    x = np.arange(len(labels))
    w = 0.38
    if labels:
        ax.bar(x - w / 2, neg, w, yerr=np.array(nerr).T, capsize=3, color=SIGN_COLORS["negative"], label="−Δ(−m)")
        ax.bar(x + w / 2, pos, w, yerr=np.array(perr).T, capsize=3, color=SIGN_COLORS["positive"], label="+Δ(+m)")
        ends = [v - e[0] for v, e in zip(neg + pos, nerr + perr)] + [v + e[1] for v, e in zip(neg + pos, nerr + perr)]
        y0, y1 = interval_ylim(neg + pos + ends)
        y1 += 0.12 * (y1 - y0)  # room for the ratio labels above the highest interval end
        for i, t in enumerate(ratios):
            ax.text(x[i], y1 - 0.08 * (y1 - y0), f"ratio {t}", ha="center", fontsize=7)
        ax.set_ylim(y0, y1)
        ax.axhline(0, color="black", lw=0.6)
    else:
        ax.text(0.5, 0.5, "no ±m pair swept", ha="center", transform=ax.transAxes)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("movement s·Δ p(refusal) at the peak (test items)")
    ax.set_title("Asymmetry: negative vs positive steering\nat each sign's peak layer", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save_figure(fig, path)


def _move_err(p) -> tuple[float, float]:
    """Error bar lengths for the movement s·Δ from its (unfolded) interval."""
    lo, hi = p.move_ci
    return max(p.move - lo, 0.0), max(hi - p.move, 0.0)


def paper_extrapolation_note(n_params_b: float) -> str:
    """The note put beside a model outside the paper's fitted range: its curve value there is an extrapolation."""
    return (f"paper curve drawn only on its fitted range 7–70B; its value at {n_params_b:g}B "
            f"({float(paper_curve(np.array([n_params_b]))[0]):.2f}) would be an extrapolation, not a prediction")


def plot_scaling(scaling, path) -> list[Path]:
    """Peak movement s·Δ against parameters (log x): our points, imported points, fits with bands, and the paper's curve."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=130)
    pts = scaling.points
    xs_all = [p.n_params_b for p in pts] or [0.1]
    lo_x, hi_x = min(xs_all + [0.05]) / 1.5, max(xs_all + [70.0]) * 1.5
    grid = np.geomspace(lo_x, hi_x, 200)
    inside = (grid >= PAPER_RANGE_B[0]) & (grid <= PAPER_RANGE_B[1])
    ax.plot(grid[inside], paper_curve(grid[inside]), color="gray", ls="--", lw=1.5,
            label="paper: 0.081 + 2.4·exp(−0.42·x), fitted on 7–70B")
    outside = [p for p in pts if not PAPER_RANGE_B[0] <= p.n_params_b <= PAPER_RANGE_B[1]]
    if outside:
        m = min(outside, key=lambda p: p.n_params_b)
        ax.text(0.01, 0.01, paper_extrapolation_note(m.n_params_b), transform=ax.transAxes, fontsize=6.5,
                va="bottom", color="dimgray")
    styles = {"exp": ("#8e44ad", "-"), "power": ("#16a085", "-."), "loglinear": ("#d35400", ":"),
              "linear": ("#2c3e50", (0, (5, 2, 1, 2)))}
    n_fits = 0
    for name, fit in scaling.fits.items():
        if not fit.ok:
            continue
        n_fits += 1
        c, ls = styles[name]
        label = f"ours: {MODELS[name][2]}" + (f" (AICc {fit.aicc:.1f})" if fit.aicc is not None else
                                                      f" (AIC {fit.aic:.1f}, too few points for AICc)"
                                                      if fit.aic is not None else
                                                      f" ({fit.n_points} points = parameters: not a test)")
        ax.plot(grid, fit.predict(grid), color=c, ls=ls, lw=1.6, label=label)
        b = band(fit, grid)
        if b is not None and name == "exp":
            ax.fill_between(grid, np.clip(b[0], -1, 2), np.clip(b[1], -1, 2), color=c, alpha=0.12, lw=0)
    for p in pts:
        ours = p.source == "sweep"
        err = None
        if p.ci_low is not None and p.ci_high is not None:
            err = [[max(p.y - p.ci_low, 0)], [max(p.ci_high - p.y, 0)]]
        ax.errorbar([p.n_params_b], [p.y], yerr=err, fmt="o" if ours else "s", ms=7,
                    color="black" if ours else "#7f8c8d", mfc="black" if ours else ("white" if not p.include_in_fit else "#7f8c8d"),
                    capsize=3, zorder=5)
        ax.annotate(p.model + ("" if p.include_in_fit else " (not fitted)"), (p.n_params_b, p.y),
                    textcoords="offset points", xytext=(6, 6), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(lo_x, hi_x)
    ends = [v for p in pts for v in (p.y, p.ci_low, p.ci_high)]
    ax.set_ylim(*interval_ylim(ends + [0.3]))
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("parameters (billions, log scale)")
    ax.set_ylabel(f"{scaling.y_definition}")
    n_fit = sum(p.include_in_fit for p in pts)
    ax.set_title(f"Scaling of the peak effect ({n_fit} point(s) in our fits; ● ours, ■ imported)" if n_fits else
                 "Scaling of the peak effect (no fit: too few points; ● ours, ■ imported)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------- open-ended refusal and capability cost


def plot_tradeoff(aggregate: list[dict], path, title: str | None = None, effect: str = "delta_logodds_harmful",
                  cost: str = "ce_delta") -> list[Path]:
    """Effect (default: change in refusal log-odds on harmful prompts) against capability cost (CE increase).

    One marker per (point, multiplier != 0): colour = multiplier, marker = window width, labelled with the
    layer (or start-end window). PNG and SVG.
    """
    rows = [r for r in aggregate if r["multiplier"] != 0 and r.get(cost) is not None and r.get(effect) is not None
            and r[cost] == r[cost] and r[effect] == r[effect]]
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=130)
    cmap = plt.get_cmap("coolwarm")
    span = max((abs(r["multiplier"]) for r in rows), default=1.0) or 1.0
    markers = "os^Dvp*h"
    widths = sorted({r["width"] for r in rows})
    for w in widths:
        ws = [r for r in rows if r["width"] == w]
        ax.scatter([r[cost] for r in ws], [r[effect] for r in ws], c=[cmap(0.5 + 0.5 * r["multiplier"] / span) for r in ws],
                   marker=markers[widths.index(w) % len(markers)], s=28, edgecolors="k", linewidths=0.4,
                   label=f"width {w}" if len(widths) > 1 else None)
        for r in ws:
            lab = str(r["layer_start"]) if w == 1 else f"{r['layer_start']}-{r['layer_end']}"
            ax.annotate(lab, (r[cost], r[effect]), fontsize=6, xytext=(2, 2), textcoords="offset points", alpha=0.8)
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(-span, span))
    fig.colorbar(sm, ax=ax, label="multiplier")
    ax.set_xlabel("capability cost: CE increase on neutral text (nats/token)")
    ax.set_ylabel({"delta_logodds_harmful": "change in refusal log-odds, harmful prompts",
                   "delta_logodds_harmless": "change in refusal log-odds, harmless prompts"}.get(effect, effect))
    if aggregate:
        ax.set_title(title or f"{aggregate[0]['model']}: steering effect vs capability cost (labels: layer)")
    if len(widths) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_openended_layers(aggregate: list[dict], path, title: str | None = None) -> list[Path]:
    """Single-layer points: refusal log-odds (harmful, harmless) and CE increase against layer, per multiplier."""
    rows = [r for r in aggregate if r["width"] == 1]
    fig, axes = plt.subplots(3, 1, figsize=(7.5, 9.0), dpi=130, sharex=True)
    cmap = plt.get_cmap("coolwarm")
    ms = sorted({r["multiplier"] for r in rows})
    span = max((abs(m) for m in ms), default=1.0) or 1.0
    panels = [("logodds_harmful", "refusal log-odds\nharmful prompts"), ("logodds_harmless", "refusal log-odds\nharmless prompts"),
              ("ce_delta", "CE increase\n(nats/token)")]
    for ax, (key, lab) in zip(axes, panels):
        for m in ms:
            rs = sorted([r for r in rows if r["multiplier"] == m], key=lambda r: r["layer_start"])
            xs = [r["layer_start"] for r in rs]
            color = "black" if m == 0 else cmap(0.5 + 0.5 * m / span)
            ax.plot(xs, [r.get(key, float("nan")) for r in rs], color=color, ls="--" if m == 0 else "-",
                    marker="" if m == 0 else "o", ms=3, lw=1.0 if m == 0 else 1.6,
                    label="m = 0 (unsteered)" if m == 0 else f"m = {m:+g}")
            if f"{key}_low" in (rs[0] if rs else {}):
                ax.fill_between(xs, [r[f"{key}_low"] for r in rs], [r[f"{key}_high"] for r in rs], color=color,
                                alpha=0.12, lw=0)
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    axes[-1].set_xlabel("layer whose output is steered (0-based)")
    if rows:
        axes[0].set_title(title or f"{rows[0]['model']}: open-ended refusal and capability cost by layer")
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------- vectors


def plot_cosine_heatmap(matrix, path, labels: list[str] | None = None, title: str = "cosine similarity",
                        xlabel: str = "layer", ylabel: str = "layer") -> list[Path]:
    """Heatmap of a square or rectangular cosine matrix (values in [-1, 1]); PNG and SVG."""
    m = np.asarray(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(6.2, 5.4), dpi=130)
    im = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1, origin="lower")
    fig.colorbar(im, ax=ax, label="cosine")
    if labels is not None and len(labels) == m.shape[0] <= 40:
        step = max(1, len(labels) // 20)
        ax.set_yticks(range(0, len(labels), step), labels[::step], fontsize=6)
        if m.shape[0] == m.shape[1]:
            ax.set_xticks(range(0, len(labels), step), labels[::step], fontsize=6, rotation=90)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
