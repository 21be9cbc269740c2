"""The showcase: what a small model *can* show about steering, measured, one panel per effect.

The A/B layer sweep on a small model is honest but flat; each panel here is a tidy CSV table in
``<folder>/showcase/`` with seeded bootstrap 95% intervals (``delta_*`` paired by item or prompt), and
(``plot_showcase``) one PNG with a one-line caption built from the numbers. See docs/showcase.md.

* ``dose``: A/B p(behaviour), the log-odds of the behaviour's answer and of the earlier letter, and the
  letter mass against the multiplier, vectors normalised to the layer's mean residual norm
  (``dose_normalize``), at ``dose_layers`` or the peak layers the report picks on the *validation* items of
  ``<folder>/items.csv``; measured with ``run_sweep`` (fast engine, self-checked) on the *test* items only.
* ``openended``: no model work; the single-layer rows of ``<folder>/openended/aggregate.json``.
* ``ablation``: baseline, directional ablation and actadd of the refusal direction (harmful minus harmless
  mean on the prompts' train split) compared on the test split (``interventions.compare_interventions``);
  its layer is ``ablation_layer`` or ``select_layer``'s choice on the validation split.

Resumable: ``manifest.json`` records per panel the hash of everything its tables depend on (config, model
fingerprint, vectors, items, prompts, columns); a panel whose tables exist under the same hash is reused.
Tables are written atomically, the manifest after each panel.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..config import AblationRecipe
from ..errors import SteerscaleError
from .config import ShowcaseConfig
from ..io.results import manifest as make_manifest
from ..io.results import write_csv, write_json
from ..stats import mean_ci
from ..core.vectors import as_vectors

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..core.types import Tokenizer
    from ..core.vectors import SteeringVectors

log = logging.getLogger(__name__)

DOSE_COLUMNS = ["model", "n_layers", "layer", "depth", "multiplier", "normalize", "residual_fraction",
                "raw_multiplier", "n_items", "p", "p_low", "p_high", "delta_p", "delta_p_low", "delta_p_high",
                "logodds", "logodds_low", "logodds_high", "delta_logodds", "delta_logodds_low",
                "delta_logodds_high", "delta_letter_logodds", "delta_letter_logodds_low", "delta_letter_logodds_high",
                "letter_mass", "letter_mass_low", "letter_mass_high"]
DOSE_CONTROL_COLUMNS = ["direction", "control_seed"] + DOSE_COLUMNS  # showcase_control: random directions
OE_COLUMNS = ["model", "n_layers", "layer", "depth", "multiplier", "n_harmful", "n_harmless"] + [
    f"{k}{s}" for k in ("delta_logodds_harmful", "delta_logodds_harmless", "delta_logodds_contrast", "ce_delta")
    for s in ("", "_low", "_high")]


@dataclass
class ShowcaseResult:
    """``tables[name]``: rows of each table (dose, dose_items, openended_layers, ablation, ablation_items)."""

    folder: Path
    tables: dict[str, list[dict]]
    manifest: dict


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _ci_cols(prefix: str, values, cfg: ShowcaseConfig) -> dict:
    m, lo, hi = mean_ci(values, cfg.n_bootstrap, cfg.seed)
    return {prefix: m, f"{prefix}_low": lo, f"{prefix}_high": hi}


# ----------------------------------------------------------------------------- dose-response


def dose_plan(folder: Path, items, cfg: ShowcaseConfig) -> tuple[list[int], list, str]:
    """(layers, items to measure on, how the layers were chosen). With ``dose_layers`` unset, the peak layers
    of the A/B sweep in ``folder/items.csv`` chosen on its validation items, and its test items."""
    from ..core.data import split_items

    if cfg.dose_layers is not None:
        return sorted(set(cfg.dose_layers)), split_items(items, cfg.val_fraction, cfg.seed)[1], "given"
    from ..analysis.model import analyze
    from ..analysis.items import read_items_csv

    path = folder / "items.csv"
    if not path.is_file():
        raise SteerscaleError(f"{path}: no A/B sweep to choose the dose-response layer from; set showcase "
                              f"dose_layers")
    a = analyze(read_items_csv(path), n_boot=10, seed=cfg.seed, val_fraction=cfg.val_fraction)
    test_ids = set(a.test_items)
    test = [it for it in items if it.id in test_ids]
    if len(test) != len(test_ids):
        raise SteerscaleError(f"{path}: its test items are not among the {len(items)} items given to the showcase")
    layers = sorted({p.layer for p in a.peaks.values()})
    return layers, test, f"peak layers of items.csv on its {len(a.val_items)} validation items"


def dose_rows(item_rows: list[dict], vectors: SteeringVectors, raw_norms, mean_norms, normalize: str,
              cfg: ShowcaseConfig, first: dict[str, int]) -> list[dict]:
    """Per (layer, multiplier): means with intervals of p, log-odds and letter mass, and their paired changes
    from multiplier 0 on the same items; ``residual_fraction`` = m x |vector[L]| / mean residual norm at L.
    ``delta_letter_logodds``: the change in log p(earlier letter) - log p(later letter) of each item's pair
    (``first[item]`` = +1 when the matching letter is the earlier one, else -1): the same numbers as
    ``delta_logodds``, signed by letter instead of by meaning. A vector that moves the letter, not the
    behaviour, moves this and leaves ``delta_logodds`` near 0 when the items' matching letters are balanced."""
    by: dict[tuple, list[dict]] = {}
    for r in item_rows:
        by.setdefault((r["layer"], r["multiplier"]), []).append(r)
    out = []
    for (layer, m), rs in sorted(by.items()):
        base = {r["item"]: r for r in by[(layer, 0.0)]}
        b = [base[r["item"]] for r in rs]
        vnorm = float(vectors[layer].norm())
        frac = m * vnorm / mean_norms[layer] if mean_norms is not None else float("nan")
        row = {"model": rs[0]["model"], "n_layers": rs[0]["n_layers"], "layer": layer, "depth": rs[0]["depth"],
               "multiplier": m, "normalize": normalize, "residual_fraction": float(frac),
               "raw_multiplier": m * vnorm / raw_norms[layer] if raw_norms[layer] > 0 else float("nan"),
               "n_items": len(rs)}
        row.update(_ci_cols("p", [r["score"] for r in rs], cfg))
        row.update(_ci_cols("delta_p", [r["score"] - x["score"] for r, x in zip(rs, b)], cfg))
        row.update(_ci_cols("logodds", [r["logit_diff"] for r in rs], cfg))
        row.update(_ci_cols("delta_logodds", [r["logit_diff"] - x["logit_diff"] for r, x in zip(rs, b)], cfg))
        row.update(_ci_cols("delta_letter_logodds", [first[r["item"]] * (r["logit_diff"] - x["logit_diff"])
                                                     for r, x in zip(rs, b)], cfg))
        row.update(_ci_cols("letter_mass", [r["letter_mass"] for r in rs], cfg))
        out.append(row)
    return out


def _dose(model: PreTrainedModel, tok, info, vectors: SteeringVectors, items, folder, cfg,
          progress) -> tuple[dict, dict]:
    from ..config import SweepConfig
    from ..sweep.run import run_sweep, vectors_hash

    layers, test, how = dose_plan(folder, items, cfg)
    raw = vectors.vectors.norm(dim=-1)
    mean_norm = vectors.meta.get("mean_residual_norm")
    if cfg.dose_normalize == "residual" and mean_norm is None:
        raise SteerscaleError("showcase dose_normalize 'residual': the vectors carry no mean_residual_norm "
                              "(train_vectors records it); use 'none' or 'unit'")
    mn = torch.tensor(mean_norm, dtype=torch.float32) if mean_norm is not None else None
    v = vectors.normalized(cfg.dose_normalize, mn)
    sc = SweepConfig(layers=layers, multipliers=cfg.dose_multipliers, positions=cfg.positions, template=cfg.template,
                     system=cfg.system, batch_size=cfg.batch_size, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
    res = run_sweep(model, tok, v, test, sc, info=info, progress=progress)
    first = {it.id: 1 if sorted([it.matching, it.not_matching])[0] == it.matching else -1 for it in test}
    tables = {"dose": dose_rows(res.rows, v.vectors, raw.tolist(), mean_norm, cfg.dose_normalize, cfg, first),
              "dose_items": res.rows}
    t_ctl = time.time()
    if cfg.dose_controls:
        from .control import control_sweeps

        tables["dose_control"] = [
            {"direction": name, "control_seed": cfg.seed, **r} for name, rows, rv in
            control_sweeps(model, tok, info, v, test, sc, cfg, progress)
            for r in dose_rows(rows, rv, raw.tolist(), mean_norm, cfg.dose_normalize, cfg, first)]
    meta = {"layers": layers, "layer_choice": how, "n_items": len(test), "items": [it.id for it in test],
            "vectors_hash": vectors_hash(vectors), "engine": res.manifest["engine"],
            "sweep_timings_s": res.manifest["timings_s"],
            "controls": {"n_random_directions": cfg.dose_controls, "seconds": round(time.time() - t_ctl, 1)}}
    return tables, meta


# ----------------------------------------------------------------------------- open-ended, by layer


def openended_rows(aggregate: list[dict]) -> list[dict]:
    """Single-layer, steered rows of an open-ended aggregate (steerscale.measures.openended_run), in the showcase's shape."""
    out = []
    for r in aggregate:
        if int(r["width"]) != 1 or float(r["multiplier"]) == 0.0:
            continue
        row = {k: r.get(k) for k in OE_COLUMNS if k in r}
        out.append(dict(row, layer=int(r["layer_start"]), multiplier=float(r["multiplier"])))
    return sorted(out, key=lambda r: (r["multiplier"], r["layer"]))


def _openended(folder: Path) -> tuple[dict, dict] | str:
    src = folder / "openended" / "aggregate.json"
    if not src.is_file() or not (folder / "openended" / "manifest.json").is_file():
        return f"skipped: no complete open-ended sweep in {src.parent}"
    try:
        agg = json.loads(src.read_text(encoding="utf-8"))
        rows = openended_rows(agg)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SteerscaleError(f"{src}: not an open-ended aggregate ({type(e).__name__}: {e})") from None
    if not rows:
        return f"skipped: {src} has no steered single-layer rows"
    return {"openended_layers": rows}, {"source": str(src), "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest()}


# ----------------------------------------------------------------------------- ablation vs addition


def ablation_candidates(n_layers: int, cfg: ShowcaseConfig) -> list[int]:
    if cfg.ablation_candidates is not None:
        return sorted(set(cfg.ablation_candidates))
    from ..interventions.recipe import pruned

    every = range(n_layers // 5, n_layers, max(1, n_layers // 10))
    return [l for l in every if not pruned(l, n_layers, AblationRecipe.prune)] or [0]  # refusal_direction's prune


def _ablation(model: PreTrainedModel, tok, info, cfg, progress) -> tuple[dict, dict] | str:
    """Refusal direction from the train split; layer chosen on the validation split (unless given); baseline,
    ablation and actadd compared on the test split (interventions.split_prompts, seeded)."""
    from ..core.data import load_neutral_text, load_prompt_records
    from ..interventions.ablation import refusal_directions, select_layer, split_prompts
    from ..interventions.compare import compare_interventions

    (h_tr, h_val, h_te), (hl_tr, hl_val, hl_te) = (split_prompts(load_prompt_records(cfg.harmful), seed=cfg.seed),
                                                   split_prompts(load_prompt_records(cfg.harmless), seed=cfg.seed))
    neutral = load_neutral_text(cfg.neutral)[: cfg.n_neutral] if cfg.n_neutral else []
    d = refusal_directions(model, tok, h_tr, hl_tr, cfg.template, cfg.system, cfg.batch_size, info)
    sel, layer, passes = None, cfg.ablation_layer, len(h_tr) + len(hl_tr)
    if layer is None:
        cands = ablation_candidates(info.n_layers, cfg)
        try:
            sel = select_layer(model, tok, d, h_val, hl_val, cands, cfg.ablation_kl_threshold, AblationRecipe.prune,
                               cfg.ablation_induce_threshold,
                               cfg.template, cfg.system, cfg.batch_size, progress=progress)
        except SteerscaleError as e:  # every candidate filtered: this model has no panel, the run goes on
            return f"skipped: {e}"
        layer = sel.layer
        passes += (1 + len(cands)) * (len(h_val) + 2 * len(hl_val))  # baseline + each candidate (select_layer)
    elif not 0 <= layer < info.n_layers:
        raise SteerscaleError(f"showcase ablation_layer {layer}: out of range, this model has layers "
                              f"0..{info.n_layers - 1}")
    res = compare_interventions(model, tok, d, layer, h_te, hl_te, neutral, multipliers=cfg.ablation_multipliers,
                                template=cfg.template, system=cfg.system, batch_size=cfg.batch_size,
                                n_bootstrap=cfg.n_bootstrap, seed=cfg.seed, info=info, selection=sel,
                                progress=progress)
    passes += len(res.aggregate) * (len(h_te) + len(hl_te) + len(neutral))
    from ..interventions.recipe import recipe_record

    induce = cfg.ablation_induce_threshold
    recipe = AblationRecipe(candidate_positions="last", filter_prompts="none", kl_threshold=cfg.ablation_kl_threshold,
                            induce_filter="off" if induce is None else "on", induce_threshold=induce or 0.0)
    meta = {"recipe": recipe_record(recipe, layer_given=sel is None,
                                    candidate_layers=None if sel is None else sel.config["candidate_layers"]),
            "layer": layer, "layer_choice": "given" if sel is None else sel.config,
            "direction_norm": float(d.vectors[layer].norm()),
            "n_prompts": {"train": [len(h_tr), len(hl_tr)], "validation": [len(h_val), len(hl_val)],
                          "test": [len(h_te), len(hl_te)], "neutral": len(neutral)},
            "forward_passes": passes, "definitions": res.manifest["definitions"]}
    tables = {"ablation": res.aggregate, "ablation_items": res.items}
    if sel is not None:
        tables["ablation_selection"] = sel.rows
    return tables, meta


# ----------------------------------------------------------------------------- driver

_STR_COLUMNS = {"model", "direction", "normalize", "item", "category", "condition", "kind", "prompt_id", "why_filtered"}


def read_table(path: Path) -> list[dict]:
    """A table written by this module, numbers as floats (empty cells None)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if k not in _STR_COLUMNS:
                try:
                    r[k] = float(v) if v != "" else None
                except (TypeError, ValueError):
                    raise SteerscaleError(f"{path}: column {k!r} holds {v!r}; expected a number") from None
    return rows


def _panel_identity(name: str, model_id: dict, cfg: ShowcaseConfig, vectors: SteeringVectors, items, folder: Path,
                    dose_layers) -> dict:
    """Everything a panel's table depends on (its hash keys resumption)."""
    from ..core.data import dataset_hash, load_neutral_text, load_prompt_records
    from ..sweep.run import vectors_hash

    c = asdict(cfg)
    common = {k: c[k] for k in ("template", "system", "batch_size", "n_bootstrap", "seed")}
    common["columns"] = [_columns(t) for t in (("dose", "dose_items", "dose_control") if name == "dose" else
                                               ("ablation", "ablation_items", "ablation_selection"))]
    if name == "dose":
        src = folder / "items.csv"
        return {"model": model_id, **common, **{k: c[k] for k in c if k.startswith("dose_")},
                "positions": cfg.positions, "val_fraction": cfg.val_fraction, "vectors": vectors_hash(vectors),
                "items": dataset_hash(items), "layers": dose_layers,
                "ab_items_csv": _file_hash(src) if cfg.dose_layers is None else None}
    prompts = [[p.id, p.text] for s in (cfg.harmful, cfg.harmless) for p in load_prompt_records(s)]
    neutral = load_neutral_text(cfg.neutral)[: cfg.n_neutral] if cfg.n_neutral else []
    return {"model": model_id, **common, **{k: c[k] for k in c if k.startswith("ablation_")},
            "prompts": _hash(prompts), "neutral": _hash(neutral)}


def _file_hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _inputs(folder: Path) -> dict:
    return {f: _file_hash(folder / f) for f in ("items.csv", "vectors.safetensors", "openended/aggregate.json")}


def showcase_complete(folder, config: ShowcaseConfig | None = None) -> bool:
    """Whether ``folder/showcase`` holds every panel of `config` (built or skipped for want of inputs), made
    from the model folder's current items.csv, vectors.safetensors and open-ended aggregate: the check
    ``steerscale reproduce`` can make before loading a model. (run_showcase itself re-checks each panel
    against the model, vectors and items it is given.)"""
    cfg = (config or ShowcaseConfig()).validate()
    folder = Path(folder)
    try:
        man = json.loads((folder / "showcase" / "manifest.json").read_text(encoding="utf-8"))
        panels = man["panels"]
        if man["config"] != json.loads(json.dumps(asdict(cfg))) or man["inputs"] != _inputs(folder):
            return False
        return all(panels[p]["status"].startswith("skipped") or
                   all((folder / "showcase" / f).is_file() for f in panels[p]["tables"]) for p in cfg.panels)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def run_showcase(model: PreTrainedModel, tokenizer: Tokenizer, info, vectors: SteeringVectors, items, folder,
                 config: ShowcaseConfig | None = None, progress: bool = True) -> ShowcaseResult:
    """Build the configured panels for one model into ``folder/showcase/`` (see the module doc).

    `vectors`: the A/B sweep's SteeringVectors (raw, as ``train_vectors`` made them: their meta holds the mean
    residual norms). `items`: the A/B test items the sweep in ``folder/items.csv`` used. `folder`: the model's
    output folder (``<out>/<model>`` in ``steerscale reproduce``). Returns the tables as read back from disk;
    a panel that cannot be built for want of inputs (no open-ended sweep) is recorded as skipped, with why.
    """
    cfg = (config or ShowcaseConfig()).validate()
    folder = Path(folder)
    out = folder / "showcase"
    out.mkdir(parents=True, exist_ok=True)
    vectors = as_vectors(vectors)
    vectors.check_model(model)
    model_id = {k: v for k, v in info.to_dict().items() if k not in ("spec", "device")}
    man_path = out / "manifest.json"
    try:
        old = json.loads(man_path.read_text(encoding="utf-8")).get("panels", {}) if man_path.is_file() else {}
    except (OSError, ValueError, AttributeError):
        old = {}
    t0 = time.time()
    manifest = make_manifest("showcase", cfg, info, t0, command=False, inputs=_inputs(folder), panels={})
    dose_layers = dose_plan(folder, items, cfg)[0] if "dose" in cfg.panels else None
    for name in cfg.panels:
        t, c = time.time(), time.process_time()
        ident = None if name == "openended" else _panel_identity(name, model_id, cfg, vectors, items, folder,
                                                                 dose_layers)
        h = _hash(ident) if ident is not None else None
        prev = old.get(name, {})
        if h is not None and prev.get("hash") == h and all((out / f).is_file() for f in prev.get("tables", ["-"])):
            manifest["panels"][name] = dict(prev, status="reused")
            continue
        if name == "dose":
            got = _dose(model, tokenizer, info, vectors, items, folder, cfg, progress)
        elif name == "openended":
            got = _openended(folder)
        else:
            got = _ablation(model, tokenizer, info, cfg, progress)
        if isinstance(got, str):
            log.warning("showcase %s: %s", name, got)
            manifest["panels"][name] = {"status": got}
            for stale in [f"{t}.csv" for t in PANEL_TABLES[name]] + [f"showcase_{name}.png", f"showcase_{name}.svg"]:
                (out / stale).unlink(missing_ok=True)  # an earlier build of this panel must not outlive its skip
            continue
        tables, meta = got
        for tname, rows in tables.items():
            write_csv(out / f"{tname}.csv", rows, _columns(tname))
        manifest["panels"][name] = dict(meta, hash=h, status="ran", tables=[f"{t}.csv" for t in tables],
                                        seconds=round(time.time() - t, 1), cpu_s=round(time.process_time() - c, 1))
        write_json(man_path, manifest)  # after each panel: an interrupted run keeps what is done
    manifest["timings_s"] = {"total": round(time.time() - t0, 3)}
    write_json(man_path, manifest)
    return load_showcase(folder)


PANEL_TABLES = {"dose": ("dose", "dose_items", "dose_control"), "openended": ("openended_layers",),
                "ablation": ("ablation", "ablation_items", "ablation_selection")}


def _columns(tname: str) -> list[str]:
    from ..interventions.compare import AGG_COLUMNS, ITEM_COLUMNS, SELECTION_COLUMNS
    from ..sweep.tables import ITEM_COLUMNS as SWEEP_ITEMS

    return {"dose": DOSE_COLUMNS, "dose_items": SWEEP_ITEMS, "dose_control": DOSE_CONTROL_COLUMNS,
            "openended_layers": OE_COLUMNS,
            "ablation": AGG_COLUMNS, "ablation_items": ITEM_COLUMNS, "ablation_selection": SELECTION_COLUMNS}[tname]


def load_showcase(folder) -> ShowcaseResult:
    """The showcase of a model folder (``folder/showcase`` or the showcase folder itself), read from disk."""
    folder = Path(folder)
    out = folder if (folder / "manifest.json").is_file() and folder.name == "showcase" else folder / "showcase"
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SteerscaleError(f"{out}: no manifest.json; run the showcase first") from None
    except ValueError as e:
        raise SteerscaleError(f"{out / 'manifest.json'}: corrupt ({e})") from None
    tables = {}
    for name, p in manifest.get("panels", {}).items():
        if p.get("status") in ("ran", "reused"):
            for f in p.get("tables", []):
                tables[Path(f).stem] = read_table(out / f)
    return ShowcaseResult(out, tables, manifest)


def plot_showcase(result_or_folder, out_dir) -> list[tuple[Path, str]]:
    """One PNG per built panel in `out_dir` with its one-line caption (steerscale.showcase_plots)."""
    from .plots import plot_showcase as plot

    return plot(result_or_folder if isinstance(result_or_folder, ShowcaseResult) else load_showcase(result_or_folder),
                out_dir)
