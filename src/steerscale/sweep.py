"""Layer x multiplier sweeps: engines, tidy result tables and a manifest.

One row per (model, layer, multiplier, item) in ``items.csv`` and one per
(model, layer, multiplier) in ``aggregate.csv`` (mean with a seeded bootstrap
95% interval, and the effect against multiplier 0). Multiplier 0 is the
unsteered model: it is computed once and reported at every layer.
"""

from __future__ import annotations

import csv
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .data import ABItem, dataset_hash, encode_items
from .errors import SteerscaleError
from .evaluate import ABScores, ab_scores, mean_ci
from .models import ModelInfo, model_info
from .steering import POSITIONS, steer

ENGINES = ("fast", "naive")  # fast: steerscale.fast (default); naive: the hook-based reference

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
            if not isinstance(m, (int, float)) or not np.isfinite(m):
                raise SteerscaleError(f"multiplier {m!r}: expected a finite number")
        layers = list(range(n_layers)) if self.layers is None else [int(l) for l in self.layers]
        bad = [l for l in layers if not 0 <= l < n_layers]
        if bad:
            raise SteerscaleError(f"layers {bad}: out of range, this model has layers 0..{n_layers - 1}")
        if self.batch_size < 1:
            raise SteerscaleError(f"batch_size {self.batch_size}: expected a positive integer")
        return SweepConfig(**dict(asdict(self), layers=sorted(set(layers)), multipliers=[float(m) for m in self.multipliers]))


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
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k)) for k in columns})
    tmp.replace(path)


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


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
    """Score every (layer, multiplier) point on `items`; write tables to `out_dir` if given."""
    info = info or model_info(model)
    config = (config or SweepConfig()).validate(info.n_layers)
    if hasattr(vectors, "check_model"):
        vectors.check_model(model)
    if not items:
        raise SteerscaleError("no items to evaluate")
    t0 = time.time()
    encoded = encode_items(tokenizer, items, config.template, config.system)
    engine = get_engine(config.engine)
    steered = [m for m in config.multipliers if m != 0.0]
    rows: list[dict] = []
    t_prep = time.time()
    if hasattr(engine, "prepare"):  # batch-outer engines compute the whole grid (and baseline) here
        engine.progress = progress
        engine.prepare(model, tokenizer, vectors, encoded, config, steered)
    t_prep = time.time() - t_prep
    t_base = time.time()
    if 0.0 not in config.multipliers:
        baseline = None
    elif hasattr(engine, "baseline"):
        baseline = engine.baseline(model, tokenizer, vectors, encoded, config)
    else:
        baseline = ab_scores(model, tokenizer, encoded, config.batch_size)
    t_base = time.time() - t_base
    for layer in tqdm(config.layers, desc=f"sweep {info.name}", disable=not progress):
        scores = engine(model, tokenizer, vectors, encoded, layer, steered, config) if steered else {}
        if baseline is not None:
            scores[0.0] = baseline
        for m in config.multipliers:
            rows.extend(item_rows(info, layer, m, items, scores[m]))
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
    }
    result = SweepResult(rows, aggregate, manifest)
    if out_dir is not None:
        result.save(out_dir)
    return result
