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
