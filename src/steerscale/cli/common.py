"""What several commands do the same way: load the model, get a run's vectors, check inputs, print a sweep."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..io.guards import check_output_folder
from ..core.checks import check_context, check_foreign_vectors, check_model_layers, saturated_points
from ..io.store import check_writable_folder

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..core.models import ModelInfo
    from ..core.types import Tokenizer
    from ..core.vectors import SteeringVectors


@dataclass(frozen=True)
class Command:
    """One subcommand: `build(parser)` adds its arguments, `run(args)` does it and returns the exit code."""

    help: str
    build: Callable
    run: Callable
    description: str | None = None


def check_out_folder(path) -> Path:
    return check_writable_folder(check_output_folder(path))


def load(args):
    """The model of the command's flags, through ``LOADER`` (the one place to replace model loading, e.g. by
    a tiny model in tests: ``monkeypatch.setattr(steerscale.cli.common, "LOADER", fake)``), then what needs the
    model (``--batch-size auto`` on an accelerator)."""
    from .options import after_loading

    model, tok, info = LOADER(args)
    after_loading(args, model)
    return model, tok, info


def load_model_of(args):
    """The model of --model/--dtype/--device/--trust-remote-code, refused when it has no decoder layers."""
    from ..core.models import load_model

    model, tok, info = load_model(args.model, dtype=args.dtype, device=args.device,
                                  trust_remote_code=args.trust_remote_code)
    check_model_layers(info)
    return model, tok, info


def check_vectors(args, vecs: SteeringVectors, model: PreTrainedModel, info: ModelInfo, layers=None) -> None:
    """Vectors given with --vectors must fit the model, (unless allowed) have been made on it, and (unless
    --allow-letter-imbalance) not carry a letter-imbalance term over 10% of |v| at `layers` (default all)."""
    vecs.check_model(model)
    check_foreign_vectors(vecs, info, getattr(args, "allow_foreign_vectors", False))
    check_letter_imbalance(args, vecs, layers)


def check_letter_imbalance(args, vecs, layers=None) -> None:
    from ..core.letters import check_imbalance

    check_imbalance(vecs.meta, layers, getattr(args, "allow_letter_imbalance", False),
                    getattr(vecs, "path", None) or "vectors")


def run_vectors(args, out: Path, model: PreTrainedModel, tok: Tokenizer, info: ModelInfo, train, layers=None):
    """The vectors of a run folder when --vectors is not given: OUT/vectors.safetensors when it was trained
    the same way (resume), else trained on --train-data now; a file trained otherwise is refused (the
    folder's results were made with it). See vectors.vectors_for_run. Vectors with a letter-imbalance term
    over the bound at `layers` (default all) are refused unless --allow-letter-imbalance."""
    from ..core.data import sampling_record
    from ..core.vectors import vectors_for_run

    vecs = vectors_for_run(model, tok, train, out / "vectors.safetensors", template=args.template,
                           system=args.system, normalize=args.normalize, batch_size=args.batch_size,
                           dataset=args.train_data, info=info, cache_dir=out / "cache", on_mismatch="refuse",
                           letter_balance=getattr(args, "letter_balance", "balanced"),
                           sampling=sampling_record(getattr(args, "train_limit", None), 0))
    check_letter_imbalance(args, vecs, layers)
    return vecs


def check_items_fit(model: PreTrainedModel, tok: Tokenizer, args, items, source) -> None:
    """A/B items (prompt, '(' and the answer letter) must fit the model's context."""
    check_context(model, tok, [(it.id, it.question) for it in items], template=args.template, system=args.system,
                  extra=2, what=f"{source}: item", extra_what="for '(' and the answer letter")


def warn_saturated(command: str, rows: list[dict]) -> None:
    for layer, m, score in saturated_points(rows)[:5]:
        print(f"steerscale {command}: warning: layer {layer}, multiplier {m:g}: every item scores exactly "
              f"{score:.6g}, saturated (the multiplier swamps the model's activations, so this point measures "
              f"nothing); use smaller multipliers", file=sys.stderr)


def print_summary(result) -> None:
    """The unsteered score and, per multiplier, the layer with the largest effect."""
    agg = result.aggregate
    base = [r for r in agg if r["multiplier"] == 0.0]
    if base:
        b = base[0]
        print(f"{b['model']}: p(behaviour) unsteered = {b['score']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}] "
              f"over {b['n_items']} items")
    for m in sorted({r["multiplier"] for r in agg if r["multiplier"] != 0.0}):
        rows = [r for r in agg if r["multiplier"] == m]
        best = max(rows, key=lambda r: abs(r["delta"]))
        print(f"  m = {m:+g}: largest |effect| at layer {best['layer']} (depth {best['depth']:.2f}): "
              f"p = {best['score']:.3f} [{best['ci_low']:.3f}, {best['ci_high']:.3f}], delta {best['delta']:+.3f}")


# The replaceable model loader of every command (see ``load``); a module attribute so tests can swap it.
LOADER: Callable = load_model_of
