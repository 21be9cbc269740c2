"""The report of a `steerscale reproduce` folder: analyse every model folder of its config, fit the scaling law,
write report.html / report.md / summary.json (also `steerscale report DIR`, which re-renders without a model)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .config import ModelSpec, ReproduceConfig
from ..errors import SteerscaleError
from .config import peak_selection, slug

log = logging.getLogger(__name__)


def render(out_dir, cfg: ReproduceConfig | None = None, runs: list[dict] | None = None) -> dict:
    """Analyse the model folders under `out_dir` and write the report (also `steerscale report`)."""
    from ..analysis.model import analyze, mark_screened
    from ..analysis.verdicts import check_asymmetry_claim, check_depth_claim
    from ..analysis.items import read_items_csv
    from ..openended.tables import read_openended
    from ..report.findings import write_report
    from .reliability import model_sections
    from ..scaling.comparison import fit_scaling, check_scaling_claim
    from ..scaling.imported import imported_points, imported_summary, load_results_table
    from ..scaling.points import point_from_analysis

    out = Path(out_dir)
    if cfg is None:
        saved = out / "reproduce_config.json"
        if not saved.is_file():
            raise SteerscaleError(f"{out}: no reproduce_config.json; is this a 'steerscale reproduce' output folder?")
        try:
            d = json.loads(saved.read_text(encoding="utf-8"))
            cfg = ReproduceConfig(d["path"], d["run"], d["data"], d["sweep"],
                                  [ModelSpec(**m) for m in d["models"]], d["imports"], d.get("openended"),
                                  d.get("showcase"))
            for k in ("n_bootstrap", "seed"):
                if isinstance(cfg.run[k], bool) or not isinstance(cfg.run[k], int) or cfg.run[k] < 0:
                    raise ValueError(f"run.{k} {cfg.run[k]!r}")
            cfg.run.setdefault("protocol", "steerscale-default")
            cfg.data.setdefault("test_sets", [])
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise SteerscaleError(f"{saved}: corrupt or not written by 'steerscale reproduce' "
                                  f"({type(e).__name__}: {str(e)[:120]}); re-run 'steerscale reproduce'") from None
    run = cfg.run
    analyses, folders, manifests, openended, split_rows = [], {}, {}, {}, []
    for m in cfg.models:
        folder = out / slug(m.name)
        if not (folder / "items.csv").is_file() or not (folder / "manifest.json").is_file():
            log.warning("%s: no results in %s; left out of the report", m.name, folder)
            continue
        a = analyze(read_items_csv(folder / "items.csv"), n_boot=run["n_bootstrap"], seed=run["seed"],
                    val_fraction=run["val_fraction"], selection=peak_selection(cfg), protocol=m.protocol)
        analyses.append(a)
        split_rows.extend(_split_rows(cfg, a, folder))
        folders[a.model] = folder
        try:
            manifests[a.model] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            if not isinstance(manifests[a.model], dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise SteerscaleError(f"{folder / 'manifest.json'}: corrupt ({type(e).__name__}: {str(e)[:120]}); "
                                  f"re-run 'steerscale reproduce' for this model") from None
        mark_screened(a, manifests[a.model].get("screen"))  # --screen grad: peaks are the best measured layers
        oe_dir = folder / "openended"
        if cfg.openended is not None and (oe_dir / "manifest.json").is_file():
            openended[a.model] = dict(read_openended(oe_dir), folder=oe_dir)
        elif cfg.openended is not None:
            log.warning("%s: no open-ended results in %s; left out of the report", m.name, oe_dir)
    known = {slug(m.name) for m in cfg.models} | {"figures"}
    for d in sorted(x for x in out.iterdir() if x.is_dir() and x.name not in known):
        log.warning("%s: ignored (not a model of this config: %s)", d, ", ".join(m.name for m in cfg.models))
    if not analyses and not cfg.imports:
        raise SteerscaleError(f"{out}: no model results to report")
    imported_rows, points = [], []
    for a in analyses:
        p = point_from_analysis(a, run["scaling_y"])
        if p is not None:
            points.append(p)
    for imp in cfg.imports:
        rows = load_results_table(imp["table"])
        imported_rows.extend(rows)
        points.extend(imported_points(rows, imp["include_in_fit"], run["scaling_y"]))
    scaling = fit_scaling(points, n_boot=run["n_bootstrap"], seed=run["seed"],
                          y_definition=f"peak |Δ| ({run['scaling_y']} of the two signs)" if run["scaling_y"] == "max"
                          else f"peak |Δ| of {run['scaling_y']} steering")
    claims = []
    for a in analyses:
        claims.append(check_depth_claim(a, "negative"))
        claims.append(check_depth_claim(a, "positive"))
        claims.append(check_asymmetry_claim(a))
    claims.append(check_scaling_claim(scaling))
    paths = write_report(out, analyses, scaling, claims, folders=folders, manifests=manifests,
                         imported=imported_summary(imported_rows) if imported_rows else [],
                         config=cfg.to_dict(), runs=runs or [], openended=openended, test_sets=split_rows,
                         sections=model_sections(cfg, analyses, folders, _showcase_sections(cfg, folders))
                         + _screen_sections(analyses),
                         sections_before="models")
    summary = {"out": str(out), "report_html": str(paths["html"]), "report_md": str(paths["md"]),
               "runs": runs or [], "claims": claims,
               "models": [{"model": a.model, "baseline": a.baseline["p"],
                           "peaks": {k: {"layer": p.layer, "depth": p.depth, "delta": p.delta,
                                         "ci": [p.ci_low, p.ci_high]} for k, p in a.peaks.items()}}
                          for a in analyses],
               "openended": paths["openended"], "test_sets": split_rows}
    return summary


def _split_rows(cfg: ReproduceConfig, a, folder: Path) -> list[dict]:
    """The effect at each peak on the main test split (its held-out part) and on every extra test set."""
    from ..analysis.model import effects_at_peaks
    from ..analysis.items import read_items_csv

    rows = []
    for sign, p in a.peaks.items():
        lo, hi = p.move_ci
        rows.append({"model": a.model, "test_set": f"{cfg.data['test']} ({'all items, in-sample' if p.in_sample else 'test half'})",
                     "sign": sign, "layer": p.layer, "multiplier": p.multiplier, "n_items": p.n_test,
                     "delta": p.delta, "delta_low": p.ci_low, "delta_high": p.ci_high, "move": p.move,
                     "move_low": lo, "move_high": hi})
    for ts in cfg.data.get("test_sets") or []:
        ts_dir = folder / "tests" / slug(Path(ts).stem if Path(ts).suffix else ts)
        if not (ts_dir / "items.csv").is_file():
            log.warning("%s: no results for test set %s in %s; left out of the report", a.model, ts, ts_dir)
            continue
        try:
            rows.extend(effects_at_peaks(read_items_csv(ts_dir / "items.csv"), a, ts, cfg.run["n_bootstrap"],
                                         cfg.run["seed"]))
        except SteerscaleError as e:
            log.warning("%s: %s; run reproduce again to refresh it", a.model, e)
    return rows


def _showcase_sections(cfg: ReproduceConfig, folders: dict) -> list:
    """One report section per model with showcase panels: each figure with its caption built from the numbers."""
    if cfg.showcase is None:
        return []
    from ..report.document import Figure, Paragraph, Section
    from ..showcase.run import plot_showcase

    sections = []
    for model, folder in folders.items():
        if not (folder / "showcase" / "manifest.json").is_file():
            continue
        figs = plot_showcase(folder, folder / "showcase")
        try:
            panels = json.loads((folder / "showcase" / "manifest.json").read_text(encoding="utf-8")).get("panels", {})
            skipped = [Paragraph(f"Panel '{name}' {p['status']}") for name, p in panels.items()
                       if str(p.get("status", "")).startswith("skipped")]
        except (OSError, ValueError, AttributeError, TypeError):
            skipped = []
        if figs or skipped:
            sections.append(Section(f"What this model shows: {model}", anchor=f"showcase-{slug(model)}", blocks=[
                Paragraph("Each panel is measured on held-out items or prompts with bootstrap 95% intervals; its "
                          "caption says what it shows and what it does not (docs/showcase.md)."),
                *[Figure(path, caption) for path, caption in figs], *skipped]))
    return sections


def _screen_sections(analyses) -> list:
    """One report section per model swept with ``screen = "grad"`` (report/screen_section.py)."""
    from ..report.screen_section import screen_section

    return [screen_section(a.model, a.screen, anchor=f"screen-{slug(a.model)}") for a in analyses if a.screen]
