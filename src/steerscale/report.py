"""Plots (PNG and SVG) and the self-contained HTML / Markdown report."""

from __future__ import annotations

import base64
import html as _html
import io
import json as _json
import math
from pathlib import Path

from .guards import md_text as _m
from .store import atomic_write_bytes, atomic_write_text

import matplotlib
import numpy as np

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
    return _save(fig, path)


# ---------------------------------------------------------------- findings: plots


DEPTH_NOTE = "depth = layer / n_layers (0 = first layer's output; the last layer is (n−1)/n)"
SIGN_COLORS = {"negative": "#2c6fbb", "positive": "#c0392b"}


def _save(fig, path) -> list[Path]:
    """PNG and SVG of `fig`, each rendered in memory and written atomically (a full disk names the file and
    leaves no truncated plot)."""
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
    return _save(fig, path)


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
    return _save(fig, path)


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
        top = max(max(neg), max(pos), 1e-3)
        for i, t in enumerate(ratios):
            ax.text(x[i], top * 1.12, f"ratio {t}", ha="center", fontsize=7)
        ax.set_ylim(min(0.0, min(neg), min(pos)) * 1.3, top * 1.3)
        ax.axhline(0, color="black", lw=0.6)
    else:
        ax.text(0.5, 0.5, "no ±m pair swept", ha="center", transform=ax.transAxes)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("movement s·Δ p(refusal) at the peak (test items)")
    ax.set_title("Asymmetry: negative vs positive steering at each sign's peak layer")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)


def _move_err(p) -> tuple[float, float]:
    """Error bar lengths for the movement s·Δ from its (unfolded) interval."""
    lo, hi = p.move_ci
    return max(p.move - lo, 0.0), max(hi - p.move, 0.0)


def plot_scaling(scaling, path) -> list[Path]:
    """Peak movement s·Δ against parameters (log x): our points, imported points, fits with bands, and the paper's curve."""
    from .scaling import MODELS, band, paper_curve

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=130)
    pts = scaling.points
    xs_all = [p.n_params_b for p in pts] or [0.1]
    lo_x, hi_x = min(xs_all + [0.05]) / 1.5, max(xs_all + [70.0]) * 1.5
    grid = np.geomspace(lo_x, hi_x, 200)
    ax.plot(grid, paper_curve(grid), color="gray", ls="--", lw=1.5,
            label="paper: 0.081 + 2.4·exp(−0.42·x)")
    styles = {"exp": ("#8e44ad", "-"), "power": ("#16a085", "-."), "loglinear": ("#d35400", ":"),
              "linear": ("#2c3e50", (0, (5, 2, 1, 2)))}
    for name, fit in scaling.fits.items():
        if not fit.ok:
            continue
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
    ymax = max([p.ci_high or p.y for p in pts] + [0.3])
    ax.set_ylim(0, min(max(ymax * 1.3, 0.3), 1.05))
    ax.set_xlabel("parameters (billions, log scale)")
    ax.set_ylabel(f"{scaling.y_definition}")
    n_fit = sum(p.include_in_fit for p in pts)
    ax.set_title(f"Scaling of the peak effect ({n_fit} point(s) in our fit; ● ours, ■ imported)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------- findings: HTML and Markdown

VERDICT_STYLE = {"supported": "#1e8449", "not supported": "#b03a2e", "inconclusive": "#9a7d0a"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-weight:600;padding:.1em .45em;border-radius:.3em;color:#fff;white-space:nowrap}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em;margin:.6em 0}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em;max-height:30em}
"""


def _e(x) -> str:
    return _html.escape(str(x))


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def _f(x, fmt="{:.3f}") -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return fmt.format(x)


def _table_html(header: list[str], rows: list[list], num_from: int = 1) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if j >= num_from else ""}">{_e(c)}</td>' for j, c in enumerate(r)) + "</tr>"
        for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _alt(caption) -> str:
    """Image alt text for Markdown: HTML escaped, brackets escaped so a caption cannot close the link."""
    return _m(caption).replace("[", "\\[").replace("]", "\\]")


def _table_md(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(_m(c).replace("|", "\\|") for c in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_m(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _model_rows(analyses) -> tuple[list[str], list[list]]:
    header = ["model", "params (B)", "layers", "items (val/test)", "baseline p(refusal) [95% CI]", "letter mass",
              "peak −m: layer (depth, alt)", "Δ(−m) test [95% CI]", "peak +m: layer (depth, alt)", "Δ(+m) test [95% CI]",
              "|Δ−|/|Δ+| [95% CI]"]
    rows = []
    for a in analyses:
        b = a.baseline
        r = [a.model, f"{a.n_params / 1e9:.3g}", a.n_layers, f"{a.n_items} ({len(a.val_items)}/{len(a.test_items)})",
             f"{b['p']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}]", f"{b['letter_mass']:.2f}"]
        for sign in ("negative", "positive"):
            p = a.peaks.get(sign)
            if p is None:
                r += ["—", "—"]
            else:
                r += [f"{p.layer} ({p.depth:.2f}, {p.depth_alt:.2f})", f"{p.delta:+.3f} [{p.ci_low:+.3f}, {p.ci_high:+.3f}]"]
        s = a.asymmetry
        r.append(f"{_f(s.ratio, '{:.2f}')} [{_f(s.ratio_low, '{:.2f}')}, {_f(s.ratio_high, '{:.2f}')}]" if s else "—")
        rows.append(r)
    return header, rows


SPLIT_NOTE = ("Peak layers are chosen on the main test set's validation items. refusal-test uses the training "
              "items' answer styles (new requests); refusal-test-ood asks the same requests with answers written in "
              "styles no training item uses, so a smaller effect there is the part tied to familiar wording. "
              "Movement s·Δ: how far p moved in the multiplier's direction.")


def _split_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    header = ["model", "test split", "sign", "layer", "m", "items", "Δ [95% CI]", "movement s·Δ [95% CI]",
              "log-odds movement [95% CI]"]
    out = []
    for r in rows:
        lo = (f"{r['logodds_move']:+.2f} [{r['logodds_move_low']:+.2f}, {r['logodds_move_high']:+.2f}]"
              if "logodds_move" in r else "—")
        out.append([r["model"], r["test_set"], r["sign"], r["layer"], f"{r['multiplier']:+g}", r["n_items"],
                    f"{r['delta']:+.3f} [{r['delta_low']:+.3f}, {r['delta_high']:+.3f}]",
                    f"{r['move']:+.3f} [{r['move_low']:+.3f}, {r['move_high']:+.3f}]", lo])
    return header, out


def _fit_rows(scaling) -> tuple[list[str], list[list]]:
    header = ["form", "status", "parameters [95% CI]", "AICc", "AIC", "LOO RMSE", "n points", "note"]
    rows = []
    for f in scaling.fits.values():
        ps = ", ".join(f"{k} = {v:.3g}" + (f" [{f.intervals[k][0]:.3g}, {f.intervals[k][1]:.3g}]" if k in f.intervals else "")
                       for k, v in f.params.items()) or "—"
        rows.append([f.formula, f.status, ps, _f(f.aicc, "{:.2f}"), _f(f.aic, "{:.2f}"), _f(f.loo_rmse, "{:.3g}"),
                     f.n_points, f.message + (" (weighted by the points' standard errors)" if f.weighted else "")])
    rows.append(["paper: y = a + b·exp(−c·x)", "published", "a = 0.081, b = 2.4, c = 0.42", "—", "—", "—", 3,
                 "Llama-2 7B/13B/70B"])
    return header, rows


def _point_rows(scaling) -> tuple[list[str], list[list]]:
    header = ["model", "params (B)", "peak s·Δ [95% CI]", "layer", "m", "source", "protocol", "in fit",
              "paper's curve here", "note"]
    rows = []
    for p, pp in zip(scaling.points, scaling.paper_at_points):
        rows.append([p.model, f"{p.n_params_b:.3g}", f"{p.y:.3f} [{_f(p.ci_low)}, {_f(p.ci_high)}]",
                     _f(p.layer, "{}"), _f(p.multiplier, "{:+g}"), p.source, p.protocol,
                     "yes" if p.include_in_fit else "no",
                     f"{pp:.3f}", p.note])
    return header, rows


def openended_section(oe: dict) -> dict:
    """One model's open-ended sweep (openended.read_openended plus "folder"): figures (written into the folder),
    verdicts, a layer x multiplier table and example generations. Returns {"title", "figures": [(png, caption)],
    "intro", "verdicts", "table": (header, rows), "examples": (header, rows), "summary"}."""
    from .analysis import _ci_str, _fmt_num, check_openended

    agg, folder, man = oe["aggregate"], Path(oe["folder"]), oe["manifest"]
    model = agg[0]["model"]
    bound = man.get("config", {}).get("ce_bound")
    figs = [(plot_tradeoff(agg, folder / "tradeoff")[0],
             f"{model}: change in refusal log-odds on harmful prompts against the CE increase on neutral text, one "
             f"marker per steered layer and multiplier (label: layer).")]
    if any(r["width"] == 1 for r in agg):
        figs.append((plot_openended_layers(agg, folder / "openended_layers")[0],
                     f"{model}: refusal log-odds on harmful and harmless prompts and CE increase against the steered "
                     f"layer, one line per multiplier (bands: bootstrap 95% over prompts / paragraphs)."))
    verdicts = check_openended(agg, bound)
    base = next(r for r in agg if r["multiplier"] == 0)
    greedy = [g for g in oe["generations"] if g.get("mode", "greedy") == "greedy"]
    n_gen = {k: sum(g["kind"] == k for g in greedy if g["multiplier"] == 0 and g["layer_start"] == base["layer_start"]
                    and g["layer_end"] == base["layer_end"]) for k in ("harmful", "harmless")}
    intro = (f"Unsteered: refusal log-odds at the first response token {_ci_str(base, 'logodds_harmful')} on "
             f"{base.get('n_harmful')} harmful prompts, {_ci_str(base, 'logodds_harmless')} on {base.get('n_harmless')} "
             f"harmless prompts; phrase refusal in greedy generations {_fmt_num(base.get('phrase_refusal_harmful'), '{:.2f}')}"
             f" (harmful, n = {n_gen['harmful']}) and {_fmt_num(base.get('phrase_refusal_harmless'), '{:.2f}')} "
             f"(harmless, n = {n_gen['harmless']}); CE on {man.get('prompts', {}).get('n_neutral', '?')}"
             f" neutral paragraphs {_ci_str(base, 'ce', '{:.3f}')} nats/token. "
             f"Steering adds m × vector[L] (the A/B sweep's vectors) to the output of layer L at "
             f"{'every position' if man.get('config', {}).get('positions', 'all') == 'all' else 'positions from the instruction end'}"
             f"; Δ = steered − unsteered on the same prompts (paired bootstrap 95%); difference = Δ harmful − Δ "
             f"harmless (the two prompt sets resampled independently).")
    header = ["layer", "depth", "m", "Δ log-odds harmful [95% CI]", "Δ log-odds harmless [95% CI]",
              "difference [95% CI]", f"phrase refusal harmful / harmless (n = {n_gen['harmful']} / {n_gen['harmless']})",
              "CE increase (nats/token) [95% CI]"] + ([f"CE ≤ {bound:g}"] if bound is not None else [])
    rows = []
    for r in sorted((r for r in agg if r["multiplier"] != 0), key=lambda r: (r["width"], r["layer_start"], r["multiplier"])):
        layer = str(r["layer_start"]) if r["width"] == 1 else f"{r['layer_start']}–{r['layer_end']}"
        rows.append([layer, f"{r['depth']:.2f}", f"{r['multiplier']:+g}", _ci_str(r, "delta_logodds_harmful"),
                     _ci_str(r, "delta_logodds_harmless"), _ci_str(r, "delta_logodds_contrast"),
                     f"{_fmt_num(r.get('phrase_refusal_harmful'), '{:.2f}')} / "
                     f"{_fmt_num(r.get('phrase_refusal_harmless'), '{:.2f}')}", _ci_str(r, "ce_delta", "{:+.3f}")]
                    + (["yes" if r.get("ce_delta", math.nan) <= bound else "no"] if bound is not None else []))
    examples = ([], [])
    if verdicts and greedy:
        layer = next((v for v in verdicts if v["sign"] == "positive"), verdicts[0])["layer"]
        ms = [v["multiplier"] for v in verdicts]
        out = {(g["kind"], g["prompt_id"], g["multiplier"]): g for g in greedy
               if g["layer_start"] == layer and g["layer_end"] == layer}
        ex_header = ["kind", "prompt", "unsteered (m = 0)"] + [f"layer {layer}, m = {m:+g}" for m in ms]
        ex_rows = []
        for kind in ("harmful", "harmless"):
            ids = list(dict.fromkeys(g["prompt_id"] for g in greedy if g["kind"] == kind))[:2]
            for pid in ids:
                first = out.get((kind, pid, ms[0]))
                if first is not None:
                    ex_rows.append([kind, first["prompt"], first["unsteered_output"]]
                                   + [out[(kind, pid, m)]["output"] if (kind, pid, m) in out else "—" for m in ms])
        examples = (ex_header, ex_rows)
    summary = {"model": model, "folder": str(folder), "ce_bound": bound, "verdicts": verdicts,
               "baseline": {k: base.get(k) for k in ("logodds_harmful", "logodds_harmless", "phrase_refusal_harmful",
                                                     "phrase_refusal_harmless", "ce")},
               "rows": [{k: r.get(k) for k in ("layer_start", "layer_end", "multiplier", "delta_logodds_harmful",
                                                "delta_logodds_harmful_low", "delta_logodds_harmful_high",
                                                "delta_logodds_harmless", "delta_logodds_harmless_low",
                                                "delta_logodds_harmless_high", "delta_logodds_contrast",
                                                "delta_logodds_contrast_low", "delta_logodds_contrast_high",
                                                "phrase_refusal_harmful", "phrase_refusal_harmless", "ce_delta",
                                                "ce_delta_low", "ce_delta_high")}
                        for r in agg if r["multiplier"] != 0],
               "timings_s": man.get("timings_s")}
    return {"title": f"{model}: open-ended refusal and capability cost", "figures": figs, "intro": intro,
            "verdicts": verdicts, "table": (header, rows), "examples": examples, "summary": summary}


def write_report(out_dir, analyses, scaling, claims, folders=None, manifests=None, imported=None,
                 config=None, runs=None, openended=None, title: str = "steerscale: activation steering findings",
                 test_sets: list[dict] | None = None) -> dict:
    """Figures (PNG+SVG), one self-contained report.html (PNGs embedded as base64), and report.md.

    `openended`: model -> openended.read_openended(folder) plus "folder", for the open-ended section.
    `test_sets`: rows of the effect at each peak on each test split (reproduce._split_rows), for a table."""
    out = Path(out_dir)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    folders = folders or {}
    figs: list[tuple[str, Path, str]] = []  # (section, png path, caption)
    for a in analyses:
        base = Path(folders.get(a.model, figdir))
        p1 = plot_model_sweep(a, base / "layer_sweep")[0]
        p2 = plot_heatmap(a, base / "heatmap")[0]
        figs.append((a.model, p1, f"{a.model}: p(refusal) against steered layer for each multiplier; bands are "
                     f"bootstrap 95% intervals over items; dashed = unsteered baseline."))
        figs.append((a.model, p2, f"{a.model}: effect Δ on a layer × multiplier grid."))
    cross = []
    if analyses:
        cross.append(("depth", plot_depth(analyses, figdir / "depth")[0],
                      "Δ against relative depth (layer / n_layers) for every model; bands: paired bootstrap 95% "
                      "intervals; ★: peak chosen on validation items, plotted at its test-item Δ; shaded: 0.3–0.5."))
    cross.append(("asymmetry", plot_asymmetry(analyses, figdir / "asymmetry", imported)[0],
                  "Movement in the multiplier's direction (−Δ for −m, +Δ for +m) at each sign's held-out peak (test items, "
                  "95% intervals; below 0 = the wrong way); published rows without intervals."))
    cross.append(("scaling", plot_scaling(scaling, figdir / "scaling")[0],
                  "Peak movement s·Δ against unique parameter count with our fits (band: bootstrap 95% of the exponential) and the "
                  "paper's curve (dashed)."))

    mh, mr = _model_rows(analyses)
    ph, pr = _point_rows(scaling)
    fh, fr = _fit_rows(scaling)
    ch = ["claim", "model", "verdict", "why", "numbers"]
    cr = [[c["claim"], c.get("model", ""), c["verdict"], c["why"], c.get("numbers", "")] for c in claims]
    notes = [f"{a.model}: {n}" for a in analyses for n in a.notes] + list(scaling.notes)
    oes = [openended_section(oe) for oe in (openended or {}).values()]

    # ---- HTML
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
         f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{_CSS}</style></head><body>"]
    h.append(f"<h1>{_e(title)}</h1>")
    h.append("<p>Contrastive Activation Addition (CAA) on refusal, checking the claims of <em>Scaling laws for "
             "activation steering with Llama 2 models and refusal mechanisms</em> (arXiv 2507.11771). Score: "
             "p(refusing letter) / (p(A) + p(B)) after '(' . Steering adds m × vector[L] to the output of decoder "
             f"layer L. Effect Δ = p(L, m) − p(0). Plots use {_e(DEPTH_NOTE)}; tables also give layer / (n_layers − 1).</p>")
    h.append("<h2 id='claims'>Claims, one by one</h2>")
    h.append("<table><thead><tr>" + "".join(f"<th>{c}</th>" for c in ch) + "</tr></thead><tbody>")
    for c in claims:
        col = VERDICT_STYLE.get(c["verdict"], "#555")
        h.append(f"<tr><td>{_e(c['claim'])}</td><td>{_e(c.get('model', ''))}</td><td><span class='verdict' "
                 f"style='background:{col}'>{_e(c['verdict'])}</span></td><td>{_e(c['why'])}</td>"
                 f"<td>{_e(c.get('numbers', ''))}</td></tr>")
    h.append("</tbody></table>")
    h.append("<p>Rules: a peak is the layer with the largest movement s·Δ in the multiplier's direction "
             "(s = sign of m; never |Δ|) on a seeded validation half of the items; its Δ is reported on the other "
             "half; layers that move p the wrong way are listed apart. <b>Depth</b>: supported when the held-out "
             "effect moves p the intended way and the whole bootstrap interval of the chosen depth lies within "
             "0.3–0.5; not supported when it lies wholly outside; inconclusive otherwise. <b>Asymmetry</b>: by the "
             "interval of the difference in movement, in probability and in log-odds (both must agree). "
             "<b>Scaling</b>: the exponential is supported only when its AICc (weighted by the points' standard "
             "errors) is at least 2 below the power law's, the log-linear's and the linear's, AIC agrees, and it "
             "decays; this needs at least 5 model sizes of one protocol.</p>")
    for n in notes:
        h.append(f"<div class='note'>{_e(n)}</div>")
    h.append("<h2 id='models'>Models</h2>" + _table_html(mh, mr))
    th, tr = _split_table(test_sets or [])
    if tr:
        h.append("<h3>Effect at the peak on each test split</h3><p>" + _e(SPLIT_NOTE) + "</p>" + _table_html(th, tr))
    for sec in dict.fromkeys(s for s, _, _ in figs):
        h.append(f"<h3>{_e(sec)}</h3>")
        for s, p, cap in figs:
            if s == sec:
                h.append(f"<figure><img src='{_img(p)}' alt='{_e(cap)}'><figcaption>{_e(cap)}</figcaption></figure>")
        a = next(x for x in analyses if x.model == sec)
        if a.steerability:
            sh = ["layer", "depth", "mean per-item slope [95% CI]", "median slope", "logit-diff slope", "items wrong way",
                  "items right way"]
            sr = [[r["layer"], f"{r['depth']:.2f}", f"{r['slope']:+.3f} [{r['slope_low']:+.3f}, {r['slope_high']:+.3f}]",
                   f"{r['slope_median']:+.3f}", f"{r['logit_slope']:+.3f}", f"{r['frac_wrong_way']:.0%}",
                   f"{r['frac_right_way']:.0%}"] for r in a.steerability]
            h.append("<details><summary>Per-item steerability by layer (slope of the item's score against the "
                     "multiplier; 'wrong way' = refusal falls as m rises)</summary>" + _table_html(sh, sr) + "</details>")
    h.append("<h2 id='across'>All models</h2>")
    for _, p, cap in cross:
        h.append(f"<figure><img src='{_img(p)}' alt='{_e(cap)}'><figcaption>{_e(cap)}</figcaption></figure>")
    h.append("<h3>Scaling points</h3>" + _table_html(ph, pr))
    h.append("<h3>Fits</h3>" + _table_html(fh, fr, num_from=3))
    if imported:
        ih = ["model", "params (B)", "layer", "m", "score", "Δ", "items", "source"]
        ir = [[r["model"], f"{r['n_params_b']:.3g}", _f(r["layer"], "{}"), f"{r['multiplier']:+g}", f"{r['score']:.3f}",
               f"{r['delta']:+.3f}", _f(r["n_items"], "{}"), r["source"]] for r in imported]
        h.append("<h3>Imported results</h3>" + _table_html(ih, ir))
    if oes:
        h.append("<h2 id='openended'>Open-ended refusal and capability cost</h2>")
    for sec in oes:
        h.append(f"<h3>{_e(sec['title'])}</h3><p>{_e(sec['intro'])}</p>")
        for v in sec["verdicts"]:
            col = VERDICT_STYLE.get(v["verdict"], "#555")
            h.append(f"<p><span class='verdict' style='background:{col}'>{_e(v['verdict'])}</span> {_e(v['claim'])}: "
                     f"{_e(v['why'])}.<br><small>{_e(v['numbers'])}</small></p>")
        for p, cap in sec["figures"]:
            h.append(f"<figure><img src='{_img(p)}' alt='{_e(cap)}'><figcaption>{_e(cap)}</figcaption></figure>")
        h.append(_table_html(*sec["table"]))
        if sec["examples"][1]:
            h.append("<h4>Example generations (greedy), unsteered and steered side by side</h4>"
                     + _table_html(*sec["examples"], num_from=99))
    h.append("<h2 id='manifest'>Manifest</h2>")
    if runs:
        h.append(_table_html(["model", "status", "folder", "config hash", "seconds", "open-ended"],
                             [[r["model"], r["status"], r["folder"], r["config_hash"], r.get("seconds", "—"),
                               f"{r['openended']} ({r['openended_seconds']} s)" if r.get("openended_seconds") is not None
                               else (r.get("openended") or "—")] for r in runs]))
    man = {"config": config, "models": manifests or {}}
    h.append(f"<details><summary>manifest.json of every model and the configuration</summary><pre>"
             f"{_e(_json.dumps(man, indent=2, default=str))}</pre></details>")
    h.append("</body></html>")
    html_path = out / "report.html"
    atomic_write_text(html_path, "\n".join(h))

    # ---- Markdown
    def rel(p: Path) -> str:
        try:
            return str(Path(p).relative_to(out))
        except ValueError:
            return str(p)

    md = [f"# {_m(title)}", "",
          "CAA refusal steering vs the claims of arXiv 2507.11771. Δ = p(L, m) − p(0); peaks chosen on validation "
          f"items, reported on test items; plots use {DEPTH_NOTE}.", "", "## Claims", "", _table_md(ch, cr), ""]
    md += [f"> {_m(n)}" for n in notes] + ([""] if notes else [])
    md += ["## Models", "", _table_md(mh, mr), ""]
    if tr:
        md += ["### Effect at the peak on each test split", "", SPLIT_NOTE, "", _table_md(th, tr), ""]
    for s, p, cap in figs:
        md += [f"![{_alt(cap)}]({rel(p)})", ""]
    md += ["## All models", ""]
    for _, p, cap in cross:
        md += [f"![{_alt(cap)}]({rel(p)})", ""]
    md += ["### Scaling points", "", _table_md(ph, pr), "", "### Fits", "", _table_md(fh, fr), ""]
    md += ["## Open-ended refusal and capability cost", ""] if oes else []
    for sec in oes:
        md += [f"### {_m(sec['title'])}", "", _m(sec["intro"]), ""]
        md += [f"- **{_m(v['verdict'])}**: {_m(v['claim'])}: {_m(v['why'])}. ({_m(v['numbers'])})"
               for v in sec["verdicts"]] + [""]
        for p, cap in sec["figures"]:
            md += [f"![{_alt(cap)}]({rel(p)})", ""]
        md += [_table_md(*sec["table"]), ""]
        if sec["examples"][1]:
            md += ["Example generations (greedy):", "", _table_md(*sec["examples"]), ""]
    md += ["Full numbers: `summary.json`; per-item rows: `<model>/items.csv`; self-contained report: `report.html`.", ""]
    md_path = out / "report.md"
    atomic_write_text(md_path, "\n".join(md))

    summary = {"claims": claims, "models": [a.to_dict() for a in analyses], "scaling": scaling.to_dict(),
               "imported": imported or [], "openended": [sec["summary"] for sec in oes]}
    atomic_write_text(out / "summary.json", _json.dumps(_finite(summary), indent=2, default=_jsonable) + "\n")
    return {"html": html_path, "md": md_path,
            "figures": [p for _, p, _ in figs + cross] + [p for sec in oes for p, _ in sec["figures"]],
            "openended": summary["openended"]}


def _finite(o):
    """Strict JSON: infinities become the strings "inf"/"-inf", NaN becomes null."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)):
        o = float(o)
        if math.isnan(o):
            return None
        if math.isinf(o):
            return "inf" if o > 0 else "-inf"
    return o


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


# ------------------------------------------------------------------ open-ended refusal and capability cost


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
