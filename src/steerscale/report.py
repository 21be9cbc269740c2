"""Plots of sweep results (PNG/SVG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
    path = Path(path)
    paths = [path.with_suffix(".png"), path.with_suffix(".svg")]
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths


# ------------------------------------------------------------------ open-ended refusal and capability cost


def _save(fig, path) -> list[Path]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    paths = [path.with_suffix(".png"), path.with_suffix(".svg")]
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths


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
    return _save(fig, path)


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
    return _save(fig, path)


def plot_cosine_heatmap(matrix, path, labels: list[str] | None = None, title: str = "cosine similarity",
                        xlabel: str = "layer", ylabel: str = "layer") -> list[Path]:
    """Heatmap of a square or rectangular cosine matrix (values in [-1, 1]); PNG and SVG."""
    import numpy as np

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
    return _save(fig, path)
