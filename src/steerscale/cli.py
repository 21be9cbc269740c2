"""The `steerscale` command: parse arguments, call the API, print. Errors are one line and exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from pathlib import Path

from .errors import SteerscaleError

EPILOG = "Run 'steerscale COMMAND --help' for each command's options. Add --debug for full tracebacks."


def parse_layers(text: str | None) -> list[int] | None:
    """'all', '13', '10-14', '3,5,7' or a mix like '0-3,10'."""
    if text is None or text.strip().lower() == "all":
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise SteerscaleError(f"--layers {text!r}: expected 'all', a layer, a range like 10-14, or a comma list") from None
    return out


def parse_floats(text: str, flag: str = "--multipliers") -> list[float]:
    out = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            raise SteerscaleError(f"{flag} {text!r}: {part.strip()!r} is not a number; expected e.g. -1,0,1") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise SteerscaleError(f"{flag} {text!r}: {part.strip()!r} is not a finite number")
        out.append(v)
    return out


def _model_args(p: argparse.ArgumentParser, positional: bool = False) -> None:
    if positional:
        p.add_argument("model", nargs="?", default="smollm2-135m",
                       help="hub id, model directory, .gguf file, or 'smollm2-135m' (default, embedded)")
    else:
        p.add_argument("--model", default="smollm2-135m",
                       help="hub id, model directory, .gguf file, or 'smollm2-135m' (default, embedded)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="weights and activations (default float32; bfloat16 is faster on CPUs with bf16 matmuls, "
                   "scores then differ from float32 by up to a few hundredths)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, or auto (shard over GPUs)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off by default)")


def _prompt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template", default="chat", choices=["chat", "llama2", "plain"],
                   help="prompt format: the model's chat template, [INST] ... [/INST], or Input:/Response: (default chat)")
    p.add_argument("--system", default=None, help="system prompt (default none)")
    p.add_argument("--batch-size", type=int, default=8)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="steerscale",
        description="Contrastive Activation Addition (CAA) steering: make vectors, sweep layers x multipliers, "
        "measure how the effect scales with model size.",
        epilog=EPILOG,
    )
    ap.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="architecture, layer count and parameter count of a model")
    _model_args(p, positional=True)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("train", help="steering vectors (mean difference per layer) from an A/B dataset",
                       description="Read the residual stream (output of every decoder layer) at the answer-letter "
                       "token for the matching and non-matching answer of each item; vector[L] = mean difference.")
    _model_args(p)
    _prompt_args(p)
    p.add_argument("--data", default="refusal-train", help="CAA JSON/JSONL file or built-in name (default refusal-train)")
    p.add_argument("--normalize", default="none", choices=["none", "unit", "residual"])
    p.add_argument("--limit", type=int, default=None, help="use only the first N items")
    p.add_argument("--cache-dir", default=None, help="reuse activations cached here when the inputs match")
    p.add_argument("--out", "-o", required=True, help="output .safetensors file")

    p = sub.add_parser("sweep", help="score every layer x multiplier on held-out A/B items",
                       description="Add multiplier x vector[L] to the output of decoder layer L and score "
                       "p(matching letter) / (p(A)+p(B)). Writes items.csv, aggregate.csv, manifest.json and a plot.")
    _model_args(p)
    _prompt_args(p)
    p.add_argument("--vectors", default=None, help="vectors from 'steerscale train' (default: train on --train-data first)")
    p.add_argument("--train-data", default="refusal-train", help="dataset for vectors when --vectors is not given")
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--normalize", default="none", choices=["none", "unit", "residual"])
    p.add_argument("--data", default="refusal-test", help="evaluation dataset: CAA JSON/JSONL file or built-in name")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N items")
    p.add_argument("--layers", default="all", help="'all', '13', '10-14' or '3,5,7' (default all)")
    p.add_argument("--multipliers", default="-1,0,1", help="comma list (default -1,0,1)")
    p.add_argument("--positions", default="all", choices=["all", "instruction_end"],
                   help="steer every token (paper) or from the last instruction token on (CAA code)")
    p.add_argument("--engine", default="fast", choices=["fast", "naive"],
                   help="sweep engine: fast (default; runs only the layers and tokens steering changes, same scores "
                   "to 1e-5 in float32) or naive (one hooked full forward pass per point, the reference)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--out", "-o", required=True, help="results folder")

    p = sub.add_parser("generate", help="one prompt, steered and unsteered side by side")
    _model_args(p)
    _prompt_args(p)
    p.add_argument("prompt", help="the user message")
    p.add_argument("--vectors", required=True, help="vectors from 'steerscale train'")
    p.add_argument("--layers", default="13", help="layer(s) to steer, e.g. 13 or 12-14")
    p.add_argument("--multipliers", default="-1,1", help="comma list of multipliers to show beside the unsteered answer")
    p.add_argument("--positions", default="all", choices=["all", "instruction_end"])
    p.add_argument("--max-new-tokens", type=int, default=60)
    p.add_argument("--json", action="store_true", help="print JSON")
    return ap


def _load(args):
    from .models import load_model

    return load_model(args.model, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)


def cmd_info(args) -> int:
    from .models import load_model

    _, _, info = load_model(args.model, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)
    d = info.to_dict()
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        for k, v in d.items():
            print(f"{k:12s} {v:,}" if isinstance(v, int) else f"{k:12s} {v}")
        print(f"{'params (B)':12s} {info.n_params_b:.4f}")
    return 0


def cmd_train(args) -> int:
    from .data import load_dataset
    from .vectors import train_vectors

    items = load_dataset(args.data, limit=args.limit)
    out = Path(args.out)
    _check_writable(out.parent if str(out.parent) else Path("."))
    model, tok, info = _load(args)
    vecs = train_vectors(model, tok, items, args.template, args.system, args.normalize, args.batch_size,
                         cache_dir=args.cache_dir, info=info)
    vecs.meta["dataset"] = str(args.data)
    vecs.save(out)
    norms = vecs.norms()
    print(f"wrote {out}: {vecs.n_layers} layers x {vecs.hidden_size}, from {len(items)} items "
          f"(norm min {norms.min():.3g}, max {norms.max():.3g} at layer {int(norms.argmax())})")
    return 0


def _check_writable(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True) if not folder.exists() else None
    if not os.access(folder, os.W_OK):
        raise SteerscaleError(f"output folder {folder}: not writable")


def cmd_sweep(args) -> int:
    from .data import load_dataset
    from .report import plot_layer_sweep
    from .sweep import SweepConfig, run_sweep
    from .vectors import SteeringVectors, train_vectors

    config = SweepConfig(layers=parse_layers(args.layers), multipliers=parse_floats(args.multipliers),
                         positions=args.positions, template=args.template, system=args.system,
                         batch_size=args.batch_size, seed=args.seed, engine=args.engine)
    items = load_dataset(args.data, limit=args.limit)
    vecs = SteeringVectors.load(args.vectors) if args.vectors else None
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SteerscaleError(f"output folder {out}: cannot create ({e.strerror})") from None
    _check_writable(out)
    model, tok, info = _load(args)
    if vecs is None:
        train = load_dataset(args.train_data, limit=args.train_limit)
        vecs = train_vectors(model, tok, train, args.template, args.system, args.normalize, args.batch_size,
                             cache_dir=out / "cache", info=info)
        vecs.meta["dataset"] = str(args.train_data)
        vecs.save(out / "vectors.safetensors")
    result = run_sweep(model, tok, vecs, items, config, info=info, out_dir=out)
    plot_layer_sweep(result.aggregate, out / "layer_sweep")
    _print_summary(result)
    print(f"wrote {out}/items.csv, aggregate.csv, manifest.json, layer_sweep.png")
    return 0


def _print_summary(result) -> None:
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


def cmd_generate(args) -> int:
    from .evaluate import generate
    from .steering import steer
    from .vectors import SteeringVectors

    vecs = SteeringVectors.load(args.vectors)
    layers = parse_layers(args.layers)
    if layers is None:
        raise SteerscaleError("--layers: give the layer(s) to steer, e.g. 13 or 12-14")
    mults = parse_floats(args.multipliers)
    model, tok, info = _load(args)
    vecs.check_model(model)
    kw = dict(template=args.template, system=args.system, max_new_tokens=args.max_new_tokens)
    outputs = {"unsteered": generate(model, tok, [args.prompt], **kw)[0]}
    for m in mults:
        with steer(model, vecs, layers, m, positions=args.positions) as s:
            outputs[f"m={m:+g}"] = generate(model, tok, [args.prompt], steering=s, **kw)[0]
    if args.json:
        print(json.dumps({"prompt": args.prompt, "layers": layers, "outputs": outputs}, indent=2))
        return 0
    print(f"prompt: {args.prompt}\nsteered at output of layer(s) {layers}, positions={args.positions}\n")
    for k, v in outputs.items():
        print(f"--- {k}")
        print(textwrap.fill(v, 100) if v else "(empty)")
    return 0


COMMANDS = {"info": cmd_info, "train": cmd_train, "sweep": cmd_sweep, "generate": cmd_generate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except SteerscaleError as e:
        if args.debug:
            raise
        print(f"steerscale {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"steerscale {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
