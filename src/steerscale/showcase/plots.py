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

from ..io.results import write_json
from ..io.store import atomic_write_bytes


def _fmt_ci(r: dict, k: str, d: int = 2) -> str:
    return f"{r[k]:+.{d}f} [{r[k + '_low']:+.{d}f}, {r[k + '_high']:+.{d}f}]"


def _excludes0(r: dict, k: str) -> bool:
    return r[k + "_low"] > 0 or r[k + "_high"] < 0


def dose_caption(rows: list[dict], behaviour: str = "refusal", controls: list[dict] | None = None) -> str:
    """One line, from the numbers: what the dose panel shows and what it does not. Reported at the
    multiplier of each sign that moves the letter most, at the layer that moves it most; with `controls`
    (showcase_control rows) it ends with whether the vector beats the random directions' range there."""
    layer = max({r["layer"] for r in rows},
                key=lambda l: max(abs(r["delta_letter_logodds"]) for r in rows if r["layer"] == l))
    rs = [r for r in rows if r["layer"] == layer]
    base = next(r for r in rs if r["multiplier"] == 0)
    ends = [max((r for r in rs if r["multiplier"] * s > 0), key=lambda r: abs(r["delta_letter_logodds"]), default=None)
            for s in (-1, 1)]
    ends = [r for r in ends if r is not None]
    letter = any(_excludes0(r, "delta_letter_logodds") for r in ends)
    meaning = any(_excludes0(r, "delta_logodds") and r["delta_logodds"] * r["multiplier"] > 0 for r in ends)
    unit = "of a residual norm" if rs[0]["normalize"] == "residual" else f"x the {rs[0]['normalize']} vector"
    dose = " and ".join(f"{r['multiplier']:+g}" for r in ends)
    ab = " and ".join(_fmt_ci(r, "delta_letter_logodds") for r in ends)
    bh = " and ".join(_fmt_ci(r, "delta_logodds") for r in ends)
    where = f"at layer {int(layer)}, adding {dose} {unit}"
    n = f"({int(base['n_items'])} held-out items)"
    ctl = control_sentence(ends, controls, behaviour) if controls else ""
    if meaning:
        return (f"Steering moves the {behaviour} answer: {where} moves its log-odds by {bh} (those of answering A: "
                f"{ab}) {n}; this is the A/B format, not {behaviour} in free text.{ctl}")
    if letter:
        return (f"Steering works on the letter, not the meaning: {where} moves the log-odds of answering A by {ab}, "
                f"but those of the {behaviour} answer only by {bh} {n}. Items whose {behaviour} answer is A or B "
                f"cancel out, which is why p({behaviour}) and the A/B sweep look flat; this is not {behaviour} in "
                f"free text.{ctl}")
    return (f"No clear dose-response: {where} moves the log-odds of the {behaviour} answer by {bh} and those of "
            f"answering A by {ab} {n}.{ctl}")


def control_sentence(ends: list[dict], controls: list[dict], behaviour: str) -> str:
    """' K random directions of the same norm ... : the vector beats / does not beat their range ...'."""
    from .control import beats, control_range

    k = len({r["direction"] for r in controls})
    parts, won, won_letter = [], [], []
    for r in ends:
        bh = control_range(controls, r["layer"], r["multiplier"], "delta_logodds")
        lt = control_range(controls, r["layer"], r["multiplier"], "delta_letter_logodds")
        if bh is None or lt is None:
            continue
        parts.append(f"{bh[0]:+.2f} to {bh[1]:+.2f} ({behaviour}) and {lt[0]:+.2f} to {lt[1]:+.2f} (A) at "
                     f"{r['multiplier']:+g}")
        if beats(r["delta_logodds"], bh) and r["delta_logodds"] * r["multiplier"] > 0:
            won.append(f"{r['multiplier']:+g}")
        if beats(r["delta_letter_logodds"], lt):
            won_letter.append(f"{r['multiplier']:+g}")
    if not parts:
        return ""
    verdict = (f"the vector's move of the {behaviour} answer beats their range at {' and '.join(won)}" if won else
               f"the vector's move of the {behaviour} answer does not beat their range")
    verdict += (f"; its move of the letter beats theirs at {' and '.join(won_letter)}" if won_letter else
                "; its move of the letter does not beat theirs")
    return (f" {k} random directions of the same norm move the log-odds by {'; '.join(parts)}: {verdict}.")


def openended_caption(rows: list[dict]) -> str:
    m = max(r["multiplier"] for r in rows)
    rs = [r for r in rows if r["multiplier"] == m]
    r = max(rs, key=lambda r: abs(r["delta_logodds_harmful"]))
    specific = _excludes0(r, "delta_logodds_contrast") and r["delta_logodds_contrast"] * m > 0
    return (f"The vector changes how answers open{'' if specific else ', on harmful and harmless prompts alike'}: "
            f"at layer {int(r['layer'])} (the largest of {len(rs)} layers), m = {m:+g} moves the first-token refusal "
            f"log-odds by {_fmt_ci(r, 'delta_logodds_harmful')} on harmful and {_fmt_ci(r, 'delta_logodds_harmless')} "
            f"on harmless prompts (difference {_fmt_ci(r, 'delta_logodds_contrast')}). "
            + ("It" if specific else "It is not harmful-specific refusal, and it")
            + " counts first tokens, not refusals in the generated text.")


def ablation_caption(rows: list[dict], selection: list[dict] | None = None) -> str:
    by = {r["condition"]: r for r in rows}
    a, b = by["ablation"], by["baseline"]
    how = ", chosen on validation prompts" if selection else ""
    ce = f", at a cost of {_fmt_ci(a, 'ce_delta', 3)} nats/token on neutral text" if a.get("ce_delta") is not None else ""
    adds = [r for n, r in by.items() if n.startswith("actadd")]
    add = " and ".join(f"{_fmt_ci(c, 'delta_logodds_harmful')} / {_fmt_ci(c, 'delta_logodds_harmless')} "
                       f"(x{c['multiplier']:+g})" for c in sorted(adds, key=lambda r: -r["multiplier"]))
    return (f"Removing the refusal direction (layer {int(a['layer'])}{how}) from every layer moves first-token "
            f"refusal log-odds by {_fmt_ci(a, 'delta_logodds_harmful')} on harmful and "
            f"{_fmt_ci(a, 'delta_logodds_harmless')} on harmless prompts{ce}"
            + (f"; adding it at that layer moves them by {add}" if adds else "")
            + f" ({int(a['n_harmful'])} + {int(a['n_harmless'])} held-out prompts). Small shifts in how a model that "
              f"rarely refuses (unsteered p = {b['p_open_harmful']:.2f} on harmful prompts) opens its answers, not "
              f"refusals in generated text.")


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


def plot_dose(rows: list[dict], path: Path, behaviour: str = "refusal", controls: list[dict] | None = None) -> Path:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    for i, key in enumerate(sorted({(r["direction"], r["layer"]) for r in controls or []})):  # grey: random controls
        cs = sorted([r for r in controls if (r["direction"], r["layer"]) == key], key=lambda r: r["multiplier"])
        a2.plot([r["multiplier"] for r in cs], [r["delta_logodds"] for r in cs], color="grey", lw=0.8, alpha=0.7,
                label=f"random directions, same norm ({behaviour} answer)" if i == 0 else None)
        a2.plot([r["multiplier"] for r in cs], [r["delta_letter_logodds"] for r in cs], color="grey", lw=0.8,
                ls="--", alpha=0.7, label="random directions, same norm (letter A)" if i == 0 else None)
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
    # every series differs from every other by colour (a shade per multiplier within the prompt set's colour
    # family), line style and marker (solid ● for m > 0, dashed ▼ for m < 0) and label
    cmaps = {"delta_logodds_harmful": plt.get_cmap("Reds"), "delta_logodds_harmless": plt.get_cmap("Blues")}
    ms = sorted({r["multiplier"] for r in rows})
    for i, m in enumerate(ms):
        rs = sorted([r for r in rows if r["multiplier"] == m], key=lambda r: r["layer"])
        shade = 0.45 + 0.5 * (i / max(len(ms) - 1, 1))
        for k, cmap in cmaps.items():
            line = ax.plot([r["layer"] for r in rs], [r[k] for r in rs], color=cmap(shade),
                           ls="-" if m > 0 else "--", marker="o" if m > 0 else "v", ms=4,
                           label=f"{k.split('_')[-1]} prompts, m = {m:+g}")[0]
            ax.fill_between([r["layer"] for r in rs], [r[k + "_low"] for r in rs], [r[k + "_high"] for r in rs],
                            color=line.get_color(), alpha=0.15, lw=0)
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
            pk = {"behaviour": behaviour, "controls": res.tables.get("dose_control")} if name == "dose" else {}
            ck = {"selection": res.tables.get("ablation_selection")} if name == "ablation" else pk
            made.append((plot(rows, out / f"showcase_{name}.png", **pk), caption(rows, **ck)))
    write_json(out / "captions.json", {p.name: c for p, c in made})
    return made
