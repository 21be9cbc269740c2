"""Layer x multiplier sweeps: engines, tidy result tables and a manifest.

One row per (model, layer, multiplier, item) in ``items.csv`` and one per
(model, layer, multiplier) in ``aggregate.csv`` (mean with a seeded bootstrap
95% interval, and the effect against multiplier 0). Multiplier 0 is the
unsteered model: it is computed once and reported at every layer.

Resumable: with ``out_dir``, every finished (model, layer, multiplier) point is
written at once and atomically to ``out_dir/points/`` (see ``store.ResultsStore``);
re-running the same call continues where an interrupted run stopped, and the
tables, rebuilt from the point files, are byte-identical to an uninterrupted run's.
A different setup (config, model, dataset or vectors) into the same folder is refused.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .data import ABItem, dataset_hash, encode_items
from .errors import SteerscaleError
from .evaluate import ABScores, ab_scores, mean_ci
from .models import ModelInfo, model_info
from .steering import POSITIONS, steer
from .guards import csv_cell
from .store import ResultsStore, atomic_write_text, tensor_hash

log = logging.getLogger(__name__)

ENGINES = ("fast", "naive")  # fast: steerscale.fast (default); naive: the hook-based reference
LAYERS_PER_GROUP = 6  # at most this many layers share one unsteered pass (fast engine); at least 5 groups

ITEM_COLUMNS = [
    "model", "n_params", "n_layers", "layer", "depth", "multiplier", "item", "category",
    "score", "logit_diff", "letter_mass",
]
AGG_COLUMNS = [
    "model", "n_params", "n_layers", "layer", "depth", "depth_alt", "multiplier", "n_items",
    "score", "ci_low", "ci_high", "delta", "logit_diff", "letter_mass",
]


@dataclass
class SweepConfig:
    """What to sweep and how. ``layers=None`` means every layer."""

    layers: list[int] | None = None
    multipliers: list[float] = field(default_factory=lambda: [-1.0, 0.0, 1.0])
    positions: str = "all"
    template: str = "chat"
    system: str | None = None
    batch_size: int = 8
    engine: str = "fast"
    n_bootstrap: int = 1000
    seed: int = 0

    def validate(self, n_layers: int) -> "SweepConfig":
        if self.positions not in POSITIONS:
            raise SteerscaleError(f"positions {self.positions!r}: expected one of {', '.join(POSITIONS)}")
        if self.engine not in ENGINES:
            raise SteerscaleError(f"engine {self.engine!r}: expected one of {', '.join(ENGINES)}")
        if not self.multipliers:
            raise SteerscaleError("multipliers: expected at least one value")
        for m in self.multipliers:
            if isinstance(m, bool) or not isinstance(m, (int, float)) or not np.isfinite(m):
                raise SteerscaleError(f"multiplier {m!r}: expected a finite number")
        layers = list(range(n_layers)) if self.layers is None else [int(l) for l in self.layers]
        bad = [l for l in layers if not 0 <= l < n_layers]
        if bad:
            shown = str(bad) if len(bad) <= 8 else f"[{', '.join(map(str, bad[:4]))}, ..., {bad[-1]}] ({len(bad)} layers)"
            raise SteerscaleError(f"layers {shown}: out of range, this model has layers 0..{n_layers - 1}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise SteerscaleError(f"batch_size {self.batch_size}: expected a positive integer")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SteerscaleError(f"seed {self.seed!r}: expected an integer >= 0")
        # Multipliers are normalised (-0 is 0, 1 is 1.0) and deduplicated, first occurrence kept: a repeated
        # value would repeat its rows and shrink the intervals. Repeated layers likewise count once.
        mults = list(dict.fromkeys(float(m) + 0.0 for m in self.multipliers))
        if len(mults) != len(self.multipliers):
            log.warning("multipliers %s: repeated values count once: %s", list(self.multipliers), mults)
        if len(set(layers)) != len(layers):
            log.warning("layers: repeated values count once")
        return SweepConfig(**dict(asdict(self), layers=sorted(set(layers)), multipliers=mults))


def naive_engine(model, tokenizer, vectors, encoded, layer: int, multipliers, config: SweepConfig) -> dict[float, ABScores]:
    """The reference: one full forward pass per item and multiplier, steering hook on `layer`."""
    out = {}
    for m in multipliers:
        with steer(model, vectors, [layer], m, positions=config.positions) as s:
            out[m] = ab_scores(model, tokenizer, encoded, config.batch_size, steering=s)
    return out


def get_engine(name: str):
    """A fresh engine: ``fast`` (steerscale.fast.FastEngine, same numbers, far less work) or ``naive``."""
    if name == "fast":
        from .fast import FastEngine

        return FastEngine()
    if name == "naive":
        return naive_engine
    raise SteerscaleError(f"engine {name!r}: expected one of {', '.join(ENGINES)}")


@dataclass
class SweepResult:
    rows: list[dict]
    aggregate: list[dict]
    manifest: dict

    def save(self, out_dir) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "items.csv", self.rows, ITEM_COLUMNS)
        write_csv(out / "aggregate.csv", self.aggregate, AGG_COLUMNS)
        write_json(out / "aggregate.json", self.aggregate)
        write_json(out / "manifest.json", self.manifest)
        return out


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:  # string cells are defused against spreadsheet formulas (guards.csv_cell); numbers never
        w.writerow({k: csv_cell(_fmt(r.get(k))) if isinstance(r.get(k), str) else _fmt(r.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.8g}"
    return v


def git_revision() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                           cwd=Path(__file__).resolve().parent)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    import torch
    import transformers

    from . import __version__

    return {
        "steerscale": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def aggregate_rows(rows: list[dict], n_bootstrap: int = 1000, seed: int = 0) -> list[dict]:
    """Mean score per (model, layer, multiplier) with bootstrap interval and delta vs multiplier 0."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["layer"], r["multiplier"]), []).append(r)
    base = {}
    for (model, layer, m), g in groups.items():
        if m == 0.0:
            base[(model, layer)] = float(np.mean([r["score"] for r in g]))
    out = []
    for (model, layer, m), g in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        mean, lo, hi = mean_ci([r["score"] for r in g], n_bootstrap, seed)
        r0 = g[0]
        out.append({
            "model": model, "n_params": r0["n_params"], "n_layers": r0["n_layers"], "layer": layer,
            "depth": r0["depth"], "depth_alt": layer / max(r0["n_layers"] - 1, 1), "multiplier": m,
            "n_items": len(g), "score": mean, "ci_low": lo, "ci_high": hi,
            "delta": mean - base[(model, layer)] if (model, layer) in base else float("nan"),
            "logit_diff": float(np.mean([r["logit_diff"] for r in g])),
            "letter_mass": float(np.mean([r["letter_mass"] for r in g])),
        })
    return out


def item_rows(info: ModelInfo, layer: int, m: float, items: list[ABItem], s: ABScores) -> list[dict]:
    return [
        {
            "model": info.name, "n_params": info.n_params, "n_layers": info.n_layers, "layer": layer,
            "depth": layer / info.n_layers, "multiplier": m, "item": it.id, "category": it.category,
            "score": float(s.score[i]), "logit_diff": float(s.logit_diff[i]), "letter_mass": float(s.letter_mass[i]),
        }
        for i, it in enumerate(items)
    ]


def vectors_hash(vectors) -> str:
    """Content hash of the steering vectors (SteeringVectors, tensor, or dict layer -> tensor)."""
    import torch

    v = getattr(vectors, "vectors", vectors)
    if isinstance(v, dict):
        v = torch.stack([torch.as_tensor(v[k]).float().reshape(-1) for k in sorted(v)])
    return tensor_hash(torch.as_tensor(v))


def run_identity(config: SweepConfig, info: ModelInfo, items: list[ABItem], vectors) -> dict:
    """What must match for a run folder to be resumed: config, model, dataset and vectors."""
    model = {k: v for k, v in info.to_dict().items() if k not in ("spec", "device")}
    return {"config": asdict(config), "model": model, "dataset_hash": dataset_hash(items),
            "n_items": len(items), "vectors_hash": vectors_hash(vectors)}


def _check_scores(s: ABScores, layer, m) -> ABScores:
    if not (np.isfinite(s.score).all() and np.isfinite(s.logit_diff).all()):
        where = "unsteered" if layer is None else f"layer {layer}, multiplier {m:g}"
        raise SteerscaleError(f"scores at {where} are NaN or Inf: the model produced non-finite logits "
                              f"(try --dtype float32 or smaller multipliers)")
    return s


def _fits(point, n_items: int, layer, m) -> bool:
    """A stored point is usable when it has one row per item; otherwise (e.g. empty rows under a valid
    checksum) it is recomputed instead of failing the same way on every re-run."""
    if point is None:
        return False
    if len(point) != n_items:
        log.warning("stored point layer %s, multiplier %g has %d rows for %d items; recomputing it",
                    layer, m, len(point), n_items)
        return False
    return True


class _MemoryStore:
    """The store used without an output folder: points live in a dict."""

    def __init__(self):
        self.d = {}

    def get(self, model, layer, m=None):
        return self.d.get((model, layer, None if m is None else float(m)))

    def put(self, model, layer, m, rows):
        self.d[(model, layer, None if m is None else float(m))] = rows


def run_sweep(
    model,
    tokenizer,
    vectors,
    items: list[ABItem],
    config: SweepConfig | None = None,
    info: ModelInfo | None = None,
    out_dir=None,
    progress: bool = True,
) -> SweepResult:
    """Score every (layer, multiplier) point on `items`; write tables to `out_dir` if given.

    With `out_dir`, finished points are stored as they complete and an interrupted
    run resumes: only missing points are computed.
    """
    info = info or model_info(model)
    config = (config or SweepConfig()).validate(info.n_layers)
    if hasattr(vectors, "check_model"):
        vectors.check_model(model)
    if not items:
        raise SteerscaleError("no items to evaluate")
    t0 = time.time()
    store = ResultsStore(out_dir, run_identity(config, info, items, vectors)) if out_dir is not None else _MemoryStore()
    encoded = encode_items(tokenizer, items, config.template, config.system)
    engine = get_engine(config.engine)
    name = info.name
    t_base = t_prep = 0.0
    n_computed = 0
    baseline: ABScores | None = None

    def get_baseline() -> ABScores:
        nonlocal baseline, t_base
        if baseline is None:
            cached = store.get(name, None)
            if cached is not None and len(cached) == len(items):
                baseline = ABScores(*(np.array([r[k] for r in cached]) for k in ("score", "logit_diff", "letter_mass")))
            else:
                t = time.time()
                if hasattr(engine, "baseline"):  # from the engine's own unsteered pass
                    scores = engine.baseline(model, tokenizer, vectors, encoded, config)
                else:
                    scores = ab_scores(model, tokenizer, encoded, config.batch_size)
                baseline = _check_scores(scores, None, 0.0)
                t_base = time.time() - t
                store.put(name, None, None, [
                    {"item": it.id, "score": float(a), "logit_diff": float(b), "letter_mass": float(c)}
                    for it, a, b, c in zip(items, baseline.score, baseline.logit_diff, baseline.letter_mass)])
        return baseline

    # Engines with `prepare` share one unsteered pass across layers; give them the layers a few at a
    # time so finished points reach the store often (a kill loses at most one group's work).
    group_size = min(LAYERS_PER_GROUP, -(-len(config.layers) // 5)) if hasattr(engine, "prepare") else 1
    pbar = tqdm(total=len(config.layers), desc=f"sweep {name}", disable=not progress)
    # Engines with `prepare` give the baseline from the end of their unsteered walk: ask for it last.
    deferred_zero: list[int] = []
    for g in range(0, len(config.layers), group_size):
        group = config.layers[g : g + group_size]
        missing = {l: [m for m in config.multipliers if not _fits(store.get(name, l, m), len(items), l, m)]
                   for l in group}
        todo = [l for l in group if any(m != 0.0 for m in missing[l])]
        if todo and hasattr(engine, "prepare"):
            t = time.time()
            union = sorted({m for l in todo for m in missing[l] if m != 0.0})
            engine.progress = progress  # a bar over the group's batches, under the bar over layers
            engine.prepare(model, tokenizer, vectors, encoded, replace(config, layers=todo), union)
            t_prep += time.time() - t
        for layer in group:
            if 0.0 in missing[layer]:
                if hasattr(engine, "prepare"):
                    deferred_zero.append(layer)
                else:
                    store.put(name, layer, 0.0, item_rows(info, layer, 0.0, items, get_baseline()))
            steered = [m for m in missing[layer] if m != 0.0]
            # The reference engine costs the same per point, so store each point as it finishes;
            # other engines get a layer's missing multipliers at once (they share work).
            chunks = [[m] for m in steered] if config.engine == "naive" else ([steered] if steered else [])
            for chunk in chunks:
                scores = engine(model, tokenizer, vectors, encoded, layer, chunk, config)
                for m in chunk:
                    store.put(name, layer, m, item_rows(info, layer, m, items, _check_scores(scores[m], layer, m)))
                    n_computed += 1
            pbar.update(1)
    for layer in deferred_zero:
        store.put(name, layer, 0.0, item_rows(info, layer, 0.0, items, get_baseline()))
    pbar.close()
    rows: list[dict] = []
    for layer in config.layers:
        for m in config.multipliers:
            point = store.get(name, layer, m)
            if point is None or len(point) != len(items):
                raise SteerscaleError(f"results store {out_dir}: point layer {layer}, multiplier {m:g} is missing "
                                      f"or damaged after computing it; re-run the same command")
            rows.extend(point)
    elapsed = time.time() - t0
    aggregate = aggregate_rows(rows, config.n_bootstrap, config.seed)
    manifest = {
        "kind": "sweep",
        "created_unix": round(t0, 3),
        "command": sys.argv,
        "git_revision": git_revision(),
        "versions": versions(),
        "model": info.to_dict(),
        "config": asdict(config),
        "vectors": getattr(vectors, "meta", {}),
        "dataset": {"n_items": len(items), "hash": dataset_hash(items)},
        "definitions": {
            "steered_at": "output of decoder layer L (residual stream after the MLP), "
            + ("every token position" if config.positions == "all" else "token positions from the last instruction token on"),
            "score": "p(matching letter) / sum of p(choice letters), at the position after '('",
            "depth": "layer / n_layers (depth_alt = layer / (n_layers - 1))",
            "baseline": "multiplier 0 is the unsteered model, computed once and repeated at every layer",
        },
        "timings_s": {"total": round(elapsed, 3), "engine_prepare": round(t_prep, 3), "baseline": round(t_base, 3)},
        "engine": dict({"name": config.engine}, **(engine.stats.to_dict() if hasattr(engine, "stats") else {})),
        "resume": {"points_total": len(config.layers) * len(config.multipliers),
                   "points_computed_now": n_computed,
                   "store": "points/: one atomically written JSON file per (model, layer, multiplier)"},
        "identity": {"dataset_hash": dataset_hash(items), "vectors_hash": vectors_hash(vectors)},
    }
    result = SweepResult(rows, aggregate, manifest)
    if out_dir is not None:
        result.save(out_dir)
    return result
