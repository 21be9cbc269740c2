"""Commands on A/B items and one model: info, train, sweep (one process; cluster.py for more), generate."""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import SweepConfig, VectorOptions, check_multipliers
from .fields import GenerateOptions, InfoOptions, ItemOptions, TrainOptions
from ..errors import SteerscaleError
from ..io.guards import check_output_file, check_output_folder, short
from ..core.checks import check_context, check_layers_present
from ..io.store import check_writable_folder
from .cluster import add_cluster_args, cluster_sweep, wants_cluster
from .common import (Command, check_items_fit, check_letter_imbalance, check_vectors, load, print_summary, run_vectors,
                     warn_saturated)
from .options import (FIELDS, add_fields, config_from_args, json_arg, limit_arg, model_args, out_arg, prompt_args,
                      vector_args)

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..core.types import Tokenizer


def _info_args(p) -> None:
    model_args(p)
    add_fields(p, InfoOptions)
    json_arg(p)


def deprecated(args, old: str, new: str) -> None:
    print(f"steerscale {args.command}: note: {old} is deprecated; use {new}", file=sys.stderr)


def cmd_info(args) -> int:
    from ..core.models import load_model

    if args.model_positional is not None:
        deprecated(args, "the positional MODEL", "--model MODEL")
        if args.model not in (args.model_positional, FIELDS["model"].default):
            raise SteerscaleError(f"info: the model is given twice ({args.model_positional!r} and --model "
                                  f"{args.model!r}); give --model only")
        args.model = args.model_positional
    _, _, info = load_model(args.model, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)
    d = info.to_dict()
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        for k, v in d.items():
            print(f"{k:12s} {v:,}" if isinstance(v, int) else f"{k:12s} {v}")
        print(f"{'params (B)':12s} {info.n_params_b:.4f}")
    return 0


def _train_args(p) -> None:
    model_args(p)
    prompt_args(p)
    add_fields(p, VectorOptions, ["train_data", "train_limit"],
               helps={"train_data": "training items: CAA JSON/JSONL file or built-in name ('list' lists them)"})
    add_fields(p, TrainOptions, ["data"])
    add_fields(p, VectorOptions, ["normalize", "letter_balance"])
    limit_arg(p, help="deprecated spelling of --train-limit")
    add_fields(p, TrainOptions, ["cache_dir"])
    out_arg(p, "output .safetensors file")


def cmd_train(args) -> int:
    from ..core.data import load_dataset, sampling_record
    from ..core.letters import LetterFigures
    from ..core.vectors import train_vectors

    if args.data is not None:
        deprecated(args, "train --data", "--train-data")
        args.train_data = args.data
    if args.limit is not None:
        deprecated(args, "train --limit", "--train-limit")
        args.train_limit = args.limit
    out = check_output_file(args.out, "--out", "a .safetensors file name")
    if args.cache_dir:
        check_output_folder(args.cache_dir, "--cache-dir")
    items = load_dataset(args.train_data, limit=args.train_limit)
    check_writable_folder(out.parent if str(out.parent) else Path("."))
    model, tok, info = load(args)
    check_items_fit(model, tok, args, items, args.train_data)
    vecs = train_vectors(model, tok, items, template=args.template, system=args.system, normalize=args.normalize,
                         batch_size=args.batch_size,
                         cache_dir=args.cache_dir, info=info, letter_balance=args.letter_balance)
    vecs.meta["dataset"] = str(args.train_data)
    vecs.meta["sampling"] = sampling_record(args.train_limit, 0)
    vecs.meta.setdefault("model_type", info.model_type)  # export's model_hint
    vecs.save(out)
    norms = vecs.norms()
    print(f"wrote {out}: {vecs.n_layers} layers x {vecs.hidden_size}, from {len(items)} items "
          f"(norm min {norms.min():.3g}, max {norms.max():.3g} at layer {int(norms.argmax())})")
    print(LetterFigures.from_meta(vecs.meta).summary())
    return 0


def _sweep_args(p) -> None:
    model_args(p)
    prompt_args(p)
    vector_args(p)
    add_fields(p, ItemOptions, ["data"])
    limit_arg(p, help="evaluate a seeded sample of N items (or a fraction in (0, 1)), stratified by matching letter")
    add_fields(p, SweepConfig, ["layers", "multipliers", "positions", "engine", "seed", "screen", "confirm_top",
                                "spot_check", "val_fraction"])
    out_arg(p)
    add_cluster_args(p)  # --shard, --shards, --backend, --address, --workers, --store (cluster.py)


def cmd_sweep(args) -> int:
    from ..core.data import load_dataset
    from ..report.plots import plot_layer_sweep
    from ..sweep.run import run_sweep
    from ..core.vectors import SteeringVectors

    config = config_from_args(SweepConfig, args)
    # everything but the layer range is checked before loading; duplicate multipliers are merged here, once
    config = replace(config, multipliers=replace(config, layers=None).validate(1).multipliers)
    out_path = check_output_folder(args.out)
    items = load_dataset(args.data, limit=args.limit)
    vecs = SteeringVectors.load(args.vectors) if args.vectors else None
    if vecs is not None:
        check_layers_present(vecs, config.layers)  # imported vectors: only the layers their file covers
    train = None if vecs is not None else load_dataset(args.train_data, limit=args.train_limit)
    out = check_writable_folder(out_path)
    if vecs is not None:  # before any model load: a confounded 'none' file is refused up front
        check_letter_imbalance(args, vecs, config.layers)
    if wants_cluster(args):
        if getattr(args, "batch_size_pending", False):
            raise SteerscaleError("--batch-size auto on an accelerator needs the model in this process; with "
                                  "--shard/--shards/--backend give a number")
        if config.screen != "none":
            raise SteerscaleError(f"--screen {config.screen} runs in one process (the exact layers follow from the "
                                  f"screen): drop --shard/--shards/--backend, or sweep without the screen")
        return cluster_sweep(args, config, items, vecs, train, out)
    model, tok, info = load(args)
    config = replace(config, batch_size=args.batch_size)  # --batch-size auto is known once the model is loaded
    config.validate(info.n_layers)
    check_items_fit(model, tok, args, items, args.data)
    if train:
        check_items_fit(model, tok, args, train, args.train_data)
    if vecs is None:
        vecs = run_vectors(args, out, model, tok, info, train=train, layers=config.layers)
    else:
        check_vectors(args, vecs, model, info, layers=config.layers)
    result = run_sweep(model, tok, vecs, items, config=config, info=info, out_dir=out)
    plot_layer_sweep(result.aggregate, out / "layer_sweep")
    print_summary(result)
    sc = result.manifest.get("screen")
    if sc:
        print(f"  gradient screen: {len(sc['measured_layers'])} of {len(config.validate(info.n_layers).layers)} "
              f"layers measured exactly ({', '.join(map(str, sc['measured_layers']))}); the others were not measured "
              f"and are never a peak{'; the spot check widened K' if sc['widened'] else ''} (manifest.json: screen)")
    warn_saturated("sweep", result.rows)
    print(f"wrote {out}/items.csv, aggregate.csv, manifest.json, layer_sweep.png")
    return 0


def _generate_args(p) -> None:
    model_args(p)
    prompt_args(p)
    add_fields(p, GenerateOptions)
    json_arg(p)


def _generate_ablated(model: PreTrainedModel, tok: Tokenizer, prompt, ablated, kw) -> dict:
    from ..core.evaluate import generate
    from ..core.steering import ablate

    d, layer = ablated
    with ablate(model, d):
        return {f"ablated(layer {layer} direction)": generate(model, tok, [prompt], **kw)[0]}


def cmd_generate(args) -> int:
    from ..core.evaluate import generate
    from ..interventions.ablation import direction_from_file
    from ..core.steering import steer
    from ..core.vectors import SteeringVectors

    if args.vectors is None and args.ablate is None:
        raise SteerscaleError("generate: give --vectors (steering) and/or --ablate (a direction file)")
    opts = config_from_args(GenerateOptions, args)
    vecs = SteeringVectors.load(opts.vectors) if opts.vectors else None
    layers = opts.layers
    if layers is None:
        raise SteerscaleError("--layers: give the layer(s) to steer, e.g. 13 or 12-14")
    mults = check_multipliers(opts.multipliers, "--multipliers") if vecs is not None else []  # kept order
    if vecs is not None:
        check_layers_present(vecs, layers)
    ablated = direction_from_file(opts.ablate, opts.direction_layer) if opts.ablate else None
    model, tok, info = load(args)
    if vecs is not None:
        check_vectors(args, vecs, model, info)
    layers = [l + info.n_layers if -info.n_layers <= l < 0 else l for l in layers]  # -1 = the last layer
    if ablated is not None:  # the direction file obeys the same rule as --vectors (shape, model it was made on)
        check_vectors(args, SteeringVectors.load(opts.ablate), model, info)
    bad = [l for l in layers if not 0 <= l < info.n_layers] if vecs is not None else []  # --layers steers --vectors
    if bad:
        raise SteerscaleError(f"--layers {short(args.layers)}: layer {bad[0]} is out of range, this model has "
                              f"layers 0..{info.n_layers - 1}")
    check_context(model, tok, [("", opts.prompt)], template=args.template, system=args.system,
                  extra=opts.max_new_tokens, what="prompt")
    kw = dict(template=args.template, system=args.system, max_new_tokens=opts.max_new_tokens)
    outputs = {"unsteered": generate(model, tok, [opts.prompt], **kw)[0]}
    if ablated is not None:
        outputs.update(_generate_ablated(model, tok, opts.prompt, ablated, kw))
    for m in mults:
        with steer(model, vecs, layers, m, positions=opts.positions) as s:
            outputs[f"m={m:+g}"] = generate(model, tok, [opts.prompt], steering=s, **kw)[0]
    if args.json:
        print(json.dumps({"prompt": opts.prompt, "layers": layers, "outputs": outputs}, indent=2))
        return 0
    print(f"prompt: {opts.prompt}\nsteered at output of layer(s) {layers}, positions={opts.positions}\n")
    for k, v in outputs.items():
        print(f"--- {k}")
        print(textwrap.fill(v, 100) if v else "(empty)")
    return 0


COMMANDS = {
    "info": Command("architecture, layer count and parameter count of a model", _info_args, cmd_info),
    "train": Command("steering vectors (mean difference per layer) from an A/B dataset", _train_args, cmd_train,
                     "Read the residual stream (output of every decoder layer) at the answer-letter token for the "
                     "matching and non-matching answer of each item; vector[L] = mean difference."),
    "sweep": Command("score every layer x multiplier on held-out A/B items", _sweep_args, cmd_sweep,
                     "Add multiplier x vector[L] to the output of decoder layer L and score p(matching letter) / "
                     "(p(A)+p(B)). Writes items.csv, aggregate.csv, manifest.json and a plot."),
    "generate": Command("one prompt, steered and unsteered side by side", _generate_args, cmd_generate),
}
