"""Figures of the showcase panels (steerscale.showcase), one PNG each, and their one-line captions.

Captions are built from the measured numbers (never fixed text about effects): each says what the panel
shows, with intervals, and what it does not. PNGs are rendered in memory and written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .results import write_json  # noqa: E402
from .store import atomic_write_bytes  # noqa: E402


def _fmt_ci(r: dict, k: str, d: int = 2) -> str:
    return f"{r[k]:+.{d}f} [{r[k + '_low']:+.{d}f}, {r[k + '_high']:+.{d}f}]"


def _excludes0(r: dict, k: str) -> bool:
    return r[k + "_low"] > 0 or r[k + "_high"] < 0


def _monotone(xs: list[float]) -> bool:
    return all(b >= a for a, b in zip(xs, xs[1:])) or all(b <= a for a, b in zip(xs, xs[1:]))


def dose_caption(rows: list[dict], behaviour: str = "refusal") -> str:
    """One line, from the numbers: what the dose panel shows and what it does not."""
    layer = max({r["layer"] for r in rows},
                key=lambda l: max(abs(r["delta_letter_logodds"]) for r in rows if r["layer"] == l))
    rs = sorted([r for r in rows if r["layer"] == layer], key=lambda r: r["multiplier"])
    lo, hi, base = rs[0], rs[-1], next(r for r in rs if r["multiplier"] == 0)
    letter = [r for r in (lo, hi) if r["multiplier"] != 0 and _excludes0(r, "delta_letter_logodds")]
    meaning = [r for r in (lo, hi) if r["multiplier"] != 0 and _excludes0(r, "delta_logodds")
               and r["delta_logodds"] * r["multiplier"] > 0]
    unit = "x the layer's mean residual norm" if rs[0]["normalize"] == "residual" else f"{rs[0]['normalize']} vectors"
    head = (f"Layer {int(layer)}, {int(base['n_items'])} held-out A/B items, multiplier m {unit}: from m = "
            f"{lo['multiplier']:+g} to {hi['multiplier']:+g} the log-odds of the earlier letter (A) change by "
            f"{_fmt_ci(lo, 'delta_letter_logodds')} and {_fmt_ci(hi, 'delta_letter_logodds')} "
            f"({'monotone' if _monotone([r['delta_letter_logodds'] for r in rs]) else 'not monotone'} in m), those of "
            f"the {behaviour} answer by {_fmt_ci(lo, 'delta_logodds')} and {_fmt_ci(hi, 'delta_logodds')}")
    if meaning:
        tail = f"; the dose moves the {behaviour} answer with an interval excluding 0"
    elif letter:
        tail = (f": steering clearly changes the answer, but which letter it picks, not whether it picks the "
                f"{behaviour}; over items whose {behaviour} letter is A or B these shifts cancel, which is why "
                f"p({behaviour}) stays near {base['p']:.2f} and the A/B sweep looks flat")
    else:
        tail = "; at these doses no interval excludes 0"
    return head + tail + f" (only {base['letter_mass']:.0%} of the probability lands on the letters)."


def openended_caption(rows: list[dict]) -> str:
    m = max(r["multiplier"] for r in rows)
    rs = [r for r in rows if r["multiplier"] == m]
    r = max(rs, key=lambda r: abs(r["delta_logodds_harmful"]))
    spec = _excludes0(r, "delta_logodds_contrast")
    return (f"Open-ended prompts, first response token, m = {m:+g} (raw vectors): at layer {int(r['layer'])} the refusal "
            f"log-odds move by {_fmt_ci(r, 'delta_logodds_harmful')} on harmful prompts and "
            f"{_fmt_ci(r, 'delta_logodds_harmless')} on harmless ones (harmful minus harmless "
            f"{_fmt_ci(r, 'delta_logodds_contrast')}): "
            + ("the shift is larger on harmful prompts" if spec and r["delta_logodds_contrast"] * m > 0 else
               "the vector changes how often the model opens with refusal words on any prompt, not harmful-specific "
               "refusal")
            + "; it is a first-token measure, not refusals in generated text.")


def ablation_caption(rows: list[dict], selection: list[dict] | None = None) -> str:
    by = {r["condition"]: r for r in rows}
    a = by["ablation"]
    adds = [r for c, r in sorted(by.items()) if c.startswith("actadd")]
    parts = [f"{c['condition'].replace('actadd', 'adding it x')}: harmful {_fmt_ci(c, 'delta_logodds_harmful')}, "
             f"harmless {_fmt_ci(c, 'delta_logodds_harmless')}" for c in adds]
    ce = f", CE cost {_fmt_ci(a, 'ce_delta', 3)} nats/token" if a.get("ce_delta") is not None else ""
    how = (f", chosen among layers {', '.join(str(int(r['layer'])) for r in selection)} on validation prompts"
           if selection else "")
    return (f"Refusal direction (harmful minus harmless mean, layer {int(a['layer'])}{how}), {int(a['n_harmful'])} + "
            f"{int(a['n_harmless'])} held-out prompts, change in first-token refusal log-odds: projecting it out of "
            f"every layer: harmful {_fmt_ci(a, 'delta_logodds_harmful')}, harmless "
            f"{_fmt_ci(a, 'delta_logodds_harmless')}{ce}; " + "; ".join(parts)
            + ". A first-token measure on a model that rarely refuses: it shows the direction is causal for how "
              "answers open, not that ablation removes refusals.")


def _save_png(fig, path: Path) -> Path:
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        atomic_write_bytes(path, buf.getvalue())
    finally:
        plt.close(fig)
    return path


def _band(ax, xs, rows, k, **kw):
    line = ax.plot(xs, [r[k] for r in rows], marker="o", ms=3, **kw)[0]
    ax.fill_between(xs, [r[k + "_low"] for r in rows], [r[k + "_high"] for r in rows], color=line.get_color(),
                    alpha=0.18, lw=0)


def plot_dose(rows: list[dict], path: Path, behaviour: str = "refusal") -> Path:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    for layer in sorted({r["layer"] for r in rows}):
        rs = sorted([r for r in rows if r["layer"] == layer], key=lambda r: r["multiplier"])
        xs = [r["multiplier"] for r in rs]
        _band(a1, xs, rs, "p", label=f"p({behaviour}), layer {int(layer)}")
        a1.plot(xs, [r["letter_mass"] for r in rs], ls=":", color="grey", label=f"p(A) + p(B), layer {int(layer)}")
        _band(a2, xs, rs, "delta_letter_logodds", label=f"toward letter A, layer {int(layer)}")
        _band(a2, xs, rs, "delta_logodds", label=f"toward the {behaviour} answer, layer {int(layer)}")
        pos = [r for r in rs if r["multiplier"] > 0 and r["raw_multiplier"]]
        if pos and rs[0]["normalize"] != "none" and layer == rows[0]["layer"]:
            x1 = pos[0]["multiplier"] / pos[0]["raw_multiplier"]  # where the raw vector x 1 sits on this axis
            for a in (a1, a2):
                a.axvspan(-x1, x1, color="gold", alpha=0.3, lw=0, label="A/B sweep's m = ±1" if a is a2 else None)
    unit = "(x mean residual norm)" if rows[0]["normalize"] == "residual" else f"({rows[0]['normalize']})"
    a1.set(xlabel=f"multiplier {unit}", ylabel="probability", ylim=(0, 1), title="A/B answers, held-out items")
    a2.axhline(0, color="black", lw=0.8)
    a2.set(xlabel=f"multiplier {unit}", ylabel="Δ log-odds (paired, 95% CI)", title="change from unsteered")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc="best")
    fig.suptitle(f"{rows[0]['model']}: dose-response at the A/B peak layer", fontsize=10)
    fig.tight_layout()
    return _save_png(fig, path)


def plot_openended(rows: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    colors = {"delta_logodds_harmful": "#c0392b", "delta_logodds_harmless": "#2c6fbb"}
    for m in sorted({r["multiplier"] for r in rows}):
        rs = sorted([r for r in rows if r["multiplier"] == m], key=lambda r: r["layer"])
        for k, c in colors.items():
            _band(ax, [r["layer"] for r in rs], rs, k, color=c, ls="-" if m > 0 else "--",
                  label=f"{k.split('_')[-1]} prompts, m = {m:+g}")
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel="layer whose output is steered", ylabel="Δ refusal log-odds, first token",
           title=f"{rows[0]['model']}: open-ended refusal openings by layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _save_png(fig, path)


def _label(r: dict) -> str:
    if r["condition"] == "ablation":
        return "ablate r\n(every layer)"
    return f"add {r['multiplier']:+g} x r\n(layer {int(r['layer'])})"


def plot_ablation(rows: list[dict], path: Path) -> Path:
    conds = [r for r in rows if r["condition"] != "baseline"]
    keys = [("delta_logodds_harmful", "refusal log-odds,\nharmful prompts"),
            ("delta_logodds_harmless", "refusal log-odds,\nharmless prompts"), ("ce_delta", "CE on neutral text\n(nats/token)")]
    keys = [k for k in keys if conds and conds[0].get(k[0]) is not None]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.0 * len(keys), 3.4), sharey=True)
    for ax, (k, lab) in zip(np.atleast_1d(axes), keys):
        ys = np.arange(len(conds))
        ax.errorbar([r[k] for r in conds], ys, xerr=[[r[k] - r[k + "_low"] for r in conds],
                                                     [r[k + "_high"] - r[k] for r in conds]], fmt="o", capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(ys, [_label(r) for r in conds])
        ax.set_title(f"Δ {lab}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{rows[0]['model']}: ablation vs addition of the refusal direction (layer {int(conds[0]['layer'])})",
                 fontsize=10)
    fig.tight_layout()
    return _save_png(fig, path)


FIGURES = {"dose": (plot_dose, dose_caption), "openended_layers": (plot_openended, openended_caption),
           "ablation": (plot_ablation, ablation_caption)}


def plot_showcase(result, out_dir) -> list[tuple[Path, str]]:
    """One PNG per built panel of a ShowcaseResult in `out_dir` (showcase_<panel>.png), each with its one-line
    caption; the captions also go to ``captions.json`` there."""
    res = result
    out = Path(out_dir)
    made = []
    for name, (plot, caption) in FIGURES.items():
        rows = res.tables.get(name)
        if rows:
            behaviour = res.manifest.get("config", {}).get("behaviour", "refusal")
            pk = {"behaviour": behaviour} if name == "dose" else {}
            ck = {"selection": res.tables.get("ablation_selection")} if name == "ablation" else pk
            made.append((plot(rows, out / f"showcase_{name}.png", **pk), caption(rows, **ck)))
    write_json(out / "captions.json", {p.name: c for p, c in made})
    return made
