"""`steerscale reproduce`: the paper's three experiments over the models of a TOML config, then the report.

Composes the public API's functions (each imported from the module that defines it): load_model, load_dataset,
train_vectors, run_sweep,
(with an [openended] section) openended.run_openended on the same vectors, then
analysis, scaling and report. Each model's sweep goes in its own subfolder of the
output folder, its open-ended sweep in `<model>/openended/`; a folder that already
holds complete results for the same configuration (same config hash in its
manifest) is not run again.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import shutil
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import SCREEN_FIELDS, OpenEndedConfig, SweepConfig
from .config import ModelSpec, ReproduceConfig
from .config import load_config, peak_selection, slug
from ..errors import SteerscaleError
from ..io.store import atomic_write_text

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..core.vectors import SteeringVectors

log = logging.getLogger(__name__)


def openended_config(cfg: ReproduceConfig, m: ModelSpec, n_layers: int) -> OpenEndedConfig:
    """The OpenEndedConfig for one model: the [openended] section's fields (OpenEndedSection) plus the model's
    template, system, positions and batch size, with [run]'s seed and n_bootstrap."""
    o, s = cfg.openended, m.sweep
    kw = {f.name: o[f.name] for f in fields(OpenEndedConfig) if f.name in o}
    kw.update({k: s[k] for k in ("positions", "template", "system", "batch_size")})
    return OpenEndedConfig(**dict(kw, layers=model_layers(o, n_layers), multipliers=[float(x) for x in o["multipliers"]],
                                  n_bootstrap=cfg.run["n_bootstrap"], seed=cfg.run["seed"]))


def model_layers(sweep: dict, n_layers: int) -> list[int]:
    layers = list(range(n_layers)) if sweep["layers"] == "all" else sorted(set(sweep["layers"]))
    return layers[:: sweep["layer_stride"]]


def config_hash(cfg: ReproduceConfig, m: ModelSpec) -> str:
    """Everything that changes a model's sweep results (not the analysis settings, nor the engine),
    including the content of the model's files (``models.model_files_fingerprint``: new weights under
    the same spec make the folder incomplete; a hub id not in the local cache is keyed on its id only)."""
    from ..core.models import model_files_fingerprint

    key = {"spec": m.spec, "files": model_files_fingerprint(m.spec), "dtype": m.dtype, "device": m.device,
           "sweep": {k: v for k, v in m.sweep.items() if k != "engine" and (m.sweep.get("screen", "none") != "none"
                                                                          or k not in SCREEN_FIELDS)},
           "data": {k: v for k, v in cfg.data.items() if k != "test_sets"},  # extra test sets: own folders
           "seed": cfg.run["seed"], "n_bootstrap": cfg.run["n_bootstrap"]}
    if m.sweep.get("screen", "none") != "none":  # the screen runs on the validation split
        key["val_fraction"] = cfg.run["val_fraction"]
    return _hash(key)


def _hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def showcase_config(cfg: ReproduceConfig, m: ModelSpec):
    """The ShowcaseConfig for one model: the [showcase] panel keys plus the model's prompt format, positions and
    batch size ([sweep]) and the split and bootstrap of [run]; None without a [showcase] section."""
    if cfg.showcase is None:
        return None
    from ..showcase.config import ShowcaseConfig

    s = m.sweep
    return ShowcaseConfig.from_dict({**cfg.showcase, "template": s["template"], "system": s["system"],
                                     "positions": s["positions"], "batch_size": s["batch_size"],
                                     "val_fraction": cfg.run["val_fraction"], "n_bootstrap": cfg.run["n_bootstrap"],
                                     "seed": cfg.run["seed"]})


def showcase_complete(folder: Path, sc) -> bool:
    from ..showcase.run import showcase_complete as complete

    return complete(folder, sc)


def openended_hash(cfg: ReproduceConfig, m: ModelSpec, vectors: SteeringVectors) -> str:
    """Everything that changes a model's open-ended results, including the vectors' content."""
    from ..sweep.run import vectors_hash

    from ..core.models import model_files_fingerprint

    s = m.sweep
    return _hash({"spec": m.spec, "files": model_files_fingerprint(m.spec), "dtype": m.dtype, "device": m.device,
                  "openended": cfg.openended,
                  "sweep": {k: s[k] for k in ("template", "system", "positions", "batch_size")},
                  "seed": cfg.run["seed"], "n_bootstrap": cfg.run["n_bootstrap"], "vectors": vectors_hash(vectors)})


def is_complete(folder: Path, chash: str, table: str = "items.csv") -> bool:
    """`folder` holds `table` with the expected number of rows and a manifest with config hash `chash`."""
    man = folder / "manifest.json"
    if not man.is_file() or not (folder / table).is_file():
        return False
    try:
        meta = json.loads(man.read_text()).get("reproduce", {})
    except (json.JSONDecodeError, OSError):
        return False
    if meta.get("config_hash") != chash:
        return False
    with open(folder / table, newline="") as f:
        n_rows = sum(1 for _ in f) - 1
    return n_rows == meta.get("expected_rows")


def run_model(cfg: ReproduceConfig, m: ModelSpec, folder: Path, progress: bool = True, position: str = "") -> dict:
    """Train vectors and sweep one model into `folder` (and, with [openended], run the open-ended sweep on the
    same vectors into `folder/openended`); each part whose results are complete for its config is kept.
    Returns a status dict ("status": the A/B sweep, "openended": the open-ended sweep or None). Each stage logs one
    INFO line "<position>NAME: stage" (position e.g. "model 1 of 3: ")."""
    from ..core.data import load_dataset
    from ..core.models import load_model
    from ..core.vectors import SteeringVectors

    chash = config_hash(cfg, m)
    status = {"model": m.name, "folder": str(folder), "status": "reused", "config_hash": chash, "openended": None}
    ab_done = is_complete(folder, chash)
    oe_done = cfg.openended is None or (ab_done and is_complete(
        folder / "openended", openended_hash(cfg, m, SteeringVectors.load(folder / "vectors.safetensors")),
        "aggregate.csv"))
    if cfg.openended is not None:
        status["openended"] = "reused"
    ts_done = not cfg.data.get("test_sets") or (ab_done and all(
        is_complete(f, h) for _, f, h, _, _ in test_set_plan(cfg, m, folder, chash)))
    if cfg.data.get("test_sets"):
        status["test_sets"] = "reused"
    sc = showcase_config(cfg, m)
    sc_done = sc is None or (ab_done and oe_done and showcase_complete(folder, sc))
    if sc is not None:
        status["showcase"] = "reused"
    from .reliability import run_split_half, split_half_done

    sh_done = not cfg.run.get("split_half", True) or (ab_done and split_half_done(folder, chash))
    if ab_done and oe_done and ts_done and sc_done and sh_done:
        log.info("%s%s: complete results for this config in %s; not run again", position, m.name, folder)
        return status
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    # read every input before the (slow) model load, so a bad file fails fast
    seed = cfg.run["seed"]
    ab_data = None if ab_done else (load_dataset(cfg.data["train"], limit=cfg.data["train_limit"], seed=seed),
                                    load_dataset(cfg.data["test"], limit=cfg.data["test_limit"], seed=seed))
    oe_data = None if oe_done else _openended_inputs(cfg.openended)
    sh_train = None if sh_done else (ab_data[0] if ab_data else
                                     load_dataset(cfg.data["train"], limit=cfg.data["train_limit"], seed=seed))
    sc_items = None if sc_done else (ab_data[1] if ab_data else
                                     load_dataset(cfg.data["test"], limit=cfg.data["test_limit"], seed=seed))
    log.info("%s%s: loading the model", position, m.name)
    model, tok, info = load_model(m.spec, dtype=m.dtype, device=m.device, trust_remote_code=m.trust_remote_code)
    info.name = m.name
    from ..core.checks import check_model_layers, check_reproduce_fits

    check_model_layers(info)
    check_reproduce_fits(cfg, m, model, tok, ab_data, oe_data)  # the CLI's context checks, before any work
    try:
        if ab_data is not None:
            log.info("%s%s: training vectors, then the A/B sweep", position, m.name)
            _run_ab(cfg, m, folder, model, tok, info, *ab_data, chash, t0, progress)
            status.update(status="ran", seconds=round(time.time() - t0, 1))
        if sh_train is not None:  # split-half stability: two more training passes over half the pairs each
            status["split_half_seconds"] = run_split_half(cfg, m, folder, model, tok, info, sh_train, chash)["seconds"]
        if not ts_done:
            log.info("%s%s: OOD split (test sets at the peak layers)", position, m.name)
            t1 = time.time()
            status["test_sets"] = _run_test_sets(cfg, m, folder, model, tok, info, chash, progress)
            status["test_sets_seconds"] = round(time.time() - t1, 1)
        if oe_data is not None:
            log.info("%s%s: open-ended sweep", position, m.name)
            t1 = time.time()
            status["openended"] = _run_openended(cfg, m, folder, model, tok, info, oe_data, progress)
            status["openended_seconds"] = round(time.time() - t1, 1)
        if sc_items is not None:  # after the A/B and open-ended sweeps: it reads their tables
            from ..showcase.run import run_showcase
            from ..core.vectors import SteeringVectors as _SV

            log.info("%s%s: showcase", position, m.name)
            t1 = time.time()
            run_showcase(model, tok, info, _SV.load(folder / "vectors.safetensors"), sc_items, folder, sc,
                         progress=progress)
            status.update(showcase="ran", showcase_seconds=round(time.time() - t1, 1))
    finally:
        del model
        gc.collect()
    return status


def _run_ab(cfg, m, folder, model: PreTrainedModel, tok, info, train, test, chash, t0, progress) -> None:
    from ..sweep.run import run_sweep
    from ..core.data import sampling_record
    from ..core.letters import check_imbalance
    from ..core.vectors import vectors_for_run

    s = m.sweep
    _fresh_store(folder, chash)  # points of an earlier, different config are dropped; same config: resumed
    vecs = vectors_for_run(model, tok, train, folder / "vectors.safetensors", template=s["template"],
                           system=s["system"], normalize=s["normalize"], batch_size=s["batch_size"],
                           dataset=cfg.data["train"], info=info, cache_dir=folder / "cache", progress=progress,
                           on_mismatch="retrain", letter_balance=s.get("letter_balance", "balanced"),
                           sampling=sampling_record(cfg.data["train_limit"], cfg.run["seed"]))
    sc = sweep_config(cfg, s, model_layers(s, info.n_layers))
    check_imbalance(vecs.meta, sc.layers, bool(s.get("allow_letter_imbalance")), f"model {m.name}")
    # point by point into folder/points (resumable after a kill: only missing points are computed)
    result = run_sweep(model, tok, vecs, test, sc, info=info, out_dir=folder, progress=progress)
    n_layers_swept = len((result.manifest.get("screen") or {}).get("measured_layers") or result.manifest["config"]["layers"])
    result.manifest["reproduce"] = {
        "config_hash": chash, "config_file": cfg.path, "model_entry": m.__dict__, "data": cfg.data,
        "sampling": {"train": sampling_record(cfg.data["train_limit"], cfg.run["seed"]),
                     "test": sampling_record(cfg.data["test_limit"], cfg.run["seed"])},
        "expected_rows": n_layers_swept * len(s["multipliers"]) * len(test),
        "timings_s": {"total_with_training": round(time.time() - t0, 3)},
    }
    result.save(folder)  # manifest.json is written last: its hash marks the folder complete


def sweep_config(cfg: ReproduceConfig, s: dict, layers: list[int]) -> SweepConfig:
    """The SweepConfig of a model's effective [sweep] settings `s` at `layers`: the fields both have
    (engine None = SweepConfig's default), with [run]'s seed and n_bootstrap."""
    kw = {f.name: s[f.name] for f in fields(SweepConfig) if s.get(f.name) is not None}
    return SweepConfig(**dict(kw, layers=layers, multipliers=[float(x) for x in s["multipliers"]],
                              n_bootstrap=cfg.run["n_bootstrap"], seed=cfg.run["seed"],
                              val_fraction=cfg.run["val_fraction"]))


def test_set_plan(cfg: ReproduceConfig, m: ModelSpec, folder: Path, chash: str) -> list[tuple]:
    """For each extra test set ([data] test_sets): (name, folder, hash, items, peak layers). The layers are
    the model's peak layers as the report chooses them (on the A/B validation items), so the extra set is
    swept at those layers only and every one of its items is a test item. Needs the A/B items.csv."""
    from ..analysis.model import analyze
    from ..analysis.items import read_items_csv
    from ..core.data import dataset_hash, load_dataset

    a = analyze(read_items_csv(folder / "items.csv"), n_boot=10, seed=cfg.run["seed"],
                val_fraction=cfg.run["val_fraction"], selection=peak_selection(cfg))
    layers = sorted({p.layer for p in a.peaks.values()})
    out = []
    for ts in cfg.data["test_sets"]:
        items = load_dataset(ts, limit=cfg.data["test_limit"], seed=cfg.run["seed"])
        h = _hash({"ab": chash, "test_set": ts, "items": dataset_hash(items), "layers": layers,
                   "val_fraction": cfg.run["val_fraction"], "selection": peak_selection(cfg)})
        out.append((ts, folder / "tests" / slug(Path(ts).stem if Path(ts).suffix else ts), h, items, layers))
    return out


def _run_test_sets(cfg, m, folder, model: PreTrainedModel, tok, info, chash, progress) -> str:
    from ..sweep.run import run_sweep
    from ..core.vectors import SteeringVectors

    vecs, s, ran = SteeringVectors.load(folder / "vectors.safetensors"), m.sweep, False
    for ts, ts_dir, h, items, layers in test_set_plan(cfg, m, folder, chash):
        if is_complete(ts_dir, h):
            continue
        sc = replace(sweep_config(cfg, s, layers), screen="none")  # the peak layers only: nothing to screen
        result = run_sweep(model, tok, vecs, items, sc, info=info, progress=progress)
        result.manifest["reproduce"] = {"config_hash": h, "test_set": ts, "peak_layers": layers,
                                        "expected_rows": len(layers) * len(s["multipliers"]) * len(items)}
        result.save(ts_dir)  # manifest.json last
        ran = True
    return "ran" if ran else "reused"


STORE_KEY = "reproduce_store_key.json"


def _fresh_store(folder: Path, key: str) -> None:
    """Make `folder` hold the resumable points of config `key` only: points stored under another config
    (an earlier run with other settings) are removed, points of the same config are kept for resuming."""
    import shutil

    marker = folder / STORE_KEY
    try:
        old = json.loads(marker.read_text()).get("config_hash") if marker.is_file() else None
    except (OSError, ValueError, AttributeError):
        old = None
    if old != key and ((folder / "run.json").exists() or (folder / "points").exists()):
        log.warning("%s: results of another configuration; computing this one from scratch", folder)
        (folder / "run.json").unlink(missing_ok=True)
        shutil.rmtree(folder / "points", ignore_errors=True)
    if old != key:
        atomic_write_text(marker, json.dumps({"config_hash": key}) + "\n")


def _openended_inputs(o: dict) -> tuple:
    from ..core.data import load_neutral_text, load_prompt_records

    return (load_prompt_records(o["harmful"]), load_prompt_records(o["harmless"]),
            load_neutral_text(o["neutral"]) if o["n_neutral"] != 0 else [])


def _run_openended(cfg, m, folder, model: PreTrainedModel, tok, info, inputs, progress) -> str:
    """The open-ended sweep on the vectors the A/B sweep saved (`folder/vectors.safetensors`)."""
    from ..openended.run import run_openended
    from ..core.vectors import SteeringVectors

    vecs = SteeringVectors.load(folder / "vectors.safetensors")
    ohash = openended_hash(cfg, m, vecs)
    oe_dir = folder / "openended"
    if is_complete(oe_dir, ohash, "aggregate.csv"):  # the A/B sweep ran again but made the same vectors
        return "reused"
    _fresh_store(oe_dir, ohash)
    res = run_openended(model, tok, vecs, *inputs, openended_config(cfg, m, info.n_layers), info=info,
                        out_dir=oe_dir, progress=progress)
    res.manifest["reproduce"] = {"config_hash": ohash, "config_file": cfg.path, "openended": cfg.openended,
                                 "vectors_file": str(folder / "vectors.safetensors"),
                                 "expected_rows": len(res.aggregate)}
    res.save(oe_dir)  # manifest.json last
    return "ran"


def reproduce(config: ReproduceConfig | str | Path | None = None, out_dir="results/reproduce", progress: bool = True,
              force: bool = False, only: str | None = None) -> dict:
    """Run every model of the config (resuming), then analyse, fit and write the report. Returns a summary.

    ``only``: run just the model of that name into its per-model folder and write no report (one node of a
    cluster run, docs/scaling_out.md); returns ``{"runs": [...], "report_html": None, ...}``. A later full
    ``reproduce`` or ``steerscale report DIR`` gathers the per-model folders without recomputing them."""
    cfg = config if isinstance(config, ReproduceConfig) else load_config(config)
    if only is not None:
        names = [m.name for m in cfg.models]
        if only not in names:
            raise SteerscaleError(f"--only {only!r}: no model of that name in the config (expected one of "
                                  f"{', '.join(names)})")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SteerscaleError(f"output folder {out}: cannot create ({e.strerror})") from None
    for imp in cfg.imports:  # fail on a bad import file before hours of sweeping
        from ..scaling.imported import load_results_table

        load_results_table(imp["table"])
    atomic_write_text(out / "reproduce_config.json", json.dumps(cfg.to_dict(), indent=2, default=str) + "\n")
    runs = []
    for k, m in enumerate(cfg.models, 1):
        if only is not None and m.name != only:
            continue
        folder = out / slug(m.name)
        for man in (folder / "manifest.json", folder / "openended" / "manifest.json", folder / STORE_KEY,
                    folder / "openended" / STORE_KEY, folder / "vectors.safetensors",
                    folder / "showcase" / "manifest.json", folder / "split_half.json") if force else ():
            man.unlink(missing_ok=True)
        cache = folder / "cache"
        if force and (cache.is_symlink() or cache.is_file()):  # recompute the activations too: --force trusts nothing
            cache.unlink()
        elif force and cache.is_dir():
            shutil.rmtree(cache)
        runs.append(run_model(cfg, m, folder, progress, position=f"model {k} of {len(cfg.models)}: "))
    if only is not None:
        log.info("%s: done; run 'steerscale report %s' once every model has run", only, out)
        return {"runs": runs, "models": [], "claims": [], "report_html": None, "report_md": None}
    log.info("report: analysing %d model folder(s) in %s", len(cfg.models), out)
    from .report import render

    summary = render(out, cfg, runs)
    return summary
