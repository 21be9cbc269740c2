"""The `steerscale` command: parse arguments, call the API, print. Errors are one line and exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

from .cli_cluster import add_cluster_args, add_merge_command, cluster_sweep, cmd_merge, wants_cluster
from .errors import SteerscaleError
from .guards import (MAX_LAYERS, check_context, check_foreign_vectors, check_input_file, check_model_layers,
                     check_output_file, check_output_folder, saturated_points, short)
from .store import check_writable_folder, os_error

EPILOG = "Run 'steerscale COMMAND --help' for each command's options. Add --debug for full tracebacks."


def parse_layers(text: str | None) -> list[int] | None:
    """'all', '13', '10-14', '0-29:3' (every 3rd), '3,5,7' or a mix like '0-3,10'."""
    if text is None or text.strip().lower() == "all":
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            step = 1
            if ":" in part:
                part, st = part.split(":", 1)
                step = int(st) if len(st) <= 12 else MAX_LAYERS + 1
                if step < 1:
                    raise ValueError
            if "-" in part[1:]:
                a, b = (int(x) if len(x.strip()) <= 12 else MAX_LAYERS + 1 for x in part.split("-", 1))
                bounds = (a, b)
            else:
                a = b = int(part) if len(part) <= 12 else MAX_LAYERS + 1
                bounds = (a,)
        except ValueError:
            raise SteerscaleError(f"--layers {short(text)}: expected 'all', a layer, a range like 10-14, "
                                  f"or a comma list") from None
        # checked before expanding: '0-99999999' must not build a list of 10^8 layers
        big = [x for x in bounds if x >= MAX_LAYERS]
        if big:
            raise SteerscaleError(f"--layers {short(text)}: layer {short(big[0], 20)} is beyond any model "
                                  f"(at most {MAX_LAYERS} layers)")
        out.extend(range(a, b + 1, step))
    if not out:
        raise SteerscaleError(f"--layers {short(text)}: selects no layers; expected e.g. 10-14 (low-high)")
    return out


def parse_floats(text: str, flag: str = "--multipliers") -> list[float]:
    out = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            raise SteerscaleError(f"{flag} {short(text)}: {short(part.strip(), 40)} is not a number; "
                                  f"expected e.g. -1,0,1") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise SteerscaleError(f"{flag} {short(text)}: {short(part.strip(), 40)} is not a finite number")
        out.append(v)
    return out


def _at_least(value, low, flag: str, expected: str | None = None):
    """Refuse a numeric option below `low` (or not finite) before any model work (one line, exit 2)."""
    if value is None:
        return value
    if not (value == value and abs(value) != float("inf")) or value < low:
        raise SteerscaleError(f"{flag} {value}: expected {expected or f'a number >= {low}'}")
    return value


def _check_common(args) -> None:
    """Options the model commands share, checked before anything is loaded."""
    if hasattr(args, "batch_size"):
        _at_least(args.batch_size, 1, "--batch-size", "a positive integer")
    if hasattr(args, "seed"):
        _at_least(args.seed, 0, "--seed", "an integer >= 0 (bootstrap and sampling seed)")
    for flag in ("limit", "train_limit"):
        _at_least(getattr(args, flag, None), 1, f"--{flag.replace('_', '-')}",
                  "a positive number of items (leave it out to use all)")
    _at_least(getattr(args, "max_new_tokens", None), 1, "--max-new-tokens", "a positive number of tokens")


def _check_out_folder(path) -> Path:
    return check_writable_folder(check_output_folder(path))


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
    p.add_argument("--allow-foreign-vectors", action="store_true",
                   help="steer with vectors whose metadata names another model of the same shape")
    p.add_argument("--train-data", default="refusal-train", help="dataset for vectors when --vectors is not given")
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--normalize", default="none", choices=["none", "unit", "residual"])
    p.add_argument("--data", default="refusal-test", help="evaluation dataset: CAA JSON/JSONL file or built-in name")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N items")
    p.add_argument("--layers", default="all", help="'all', '13', '10-14' or '3,5,7' (default all)")
    p.add_argument("--multipliers", default="-1,0,1", help="comma list (default -1,0,1)")
    p.add_argument("--positions", default="all", choices=["all", "instruction_end"],
                   help="steer every token (paper) or from the last instruction token on (CAA code)")
    p.add_argument("--engine", default="fast", metavar="{fast,naive}",
                   help="sweep engine: fast (default; runs only the layers and tokens steering changes, same scores "
                   "to 1e-5 in float32) or naive (one hooked full forward pass per point, the reference)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--out", "-o", required=True, help="results folder")
    add_cluster_args(p)  # --shard, --shards, --backend, --address, --workers, --store (cli_cluster.py)

    p = sub.add_parser("generate", help="one prompt, steered and unsteered side by side")
    _model_args(p)
    _prompt_args(p)
    p.add_argument("prompt", help="the user message")
    p.add_argument("--vectors", default=None, help="vectors from 'steerscale train' (needed unless only --ablate)")
    p.add_argument("--ablate", default=None, metavar="DIRECTION_FILE",
                   help="also show the answer with this direction ablated at every layer (a vectors file; layer "
                   "from its selected_layer or --direction-layer), e.g. directions.safetensors from 'ablation'")
    p.add_argument("--direction-layer", type=int, default=None, help="layer of the --ablate file's direction")
    p.add_argument("--allow-foreign-vectors", action="store_true",
                   help="steer with vectors whose metadata names another model of the same shape")
    p.add_argument("--layers", default="13", help="layer(s) to steer, e.g. 13 or 12-14")
    p.add_argument("--multipliers", default="-1,1", help="comma list of multipliers to show beside the unsteered answer")
    p.add_argument("--positions", default="all", choices=["all", "instruction_end"])
    p.add_argument("--max-new-tokens", type=int, default=60)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("reproduce", help="the paper's experiments (layer sweep, asymmetry, scaling) and a report",
                       description="Train vectors and sweep every model of a TOML config (each in its own subfolder; "
                       "a model whose folder already holds complete results for the same config is reused), then "
                       "analyse peaks, asymmetry and the scaling fit and write report.html and report.md.")
    p.add_argument("--config", default=None, help="TOML config (default: the bundled configs/default.toml)")
    p.add_argument("--out", "-o", default="results/reproduce", help="output folder (default results/reproduce)")
    p.add_argument("--force", action="store_true", help="run every model again even if its results are complete")
    p.add_argument("--print-config", action="store_true", help="print the default config and exit")

    p = sub.add_parser("report", help="re-render the report of a 'steerscale reproduce' output folder",
                       description="Re-analyse the model folders of a reproduce output folder (no model is run) "
                       "and write report.html, report.md, figures/ and summary.json again.")
    p.add_argument("folder", help="a 'steerscale reproduce' output folder")
    add_merge_command(sub)
    add_openended_commands(sub)
    add_intervention_commands(sub)
    return ap


def _load(args):
    from .models import load_model

    model, tok, info = load_model(args.model, dtype=args.dtype, device=args.device,
                                  trust_remote_code=args.trust_remote_code)
    check_model_layers(info)
    return model, tok, info


def _vectors_for(args, vecs, model, info) -> None:
    """Vectors given with --vectors must fit the model and (unless allowed) have been made on it."""
    vecs.check_model(model)
    check_foreign_vectors(vecs, info, getattr(args, "allow_foreign_vectors", False))


def _warn_saturated(command: str, rows: list[dict]) -> None:
    for layer, m, score in saturated_points(rows)[:5]:
        print(f"steerscale {command}: warning: layer {layer}, multiplier {m:g}: every item scores exactly "
              f"{score:.6g}, saturated (the multiplier swamps the model's activations, so this point measures "
              f"nothing); use smaller multipliers", file=sys.stderr)


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

    _check_common(args)
    out = check_output_file(args.out, "--out", "a .safetensors file name")
    if args.cache_dir:
        check_output_folder(args.cache_dir, "--cache-dir")
    items = load_dataset(args.data, limit=args.limit)
    check_writable_folder(out.parent if str(out.parent) else Path("."))
    model, tok, info = _load(args)
    _check_items_fit(model, tok, args, items, args.data)
    vecs = train_vectors(model, tok, items, args.template, args.system, args.normalize, args.batch_size,
                         cache_dir=args.cache_dir, info=info)
    vecs.meta["dataset"] = str(args.data)
    vecs.save(out)
    norms = vecs.norms()
    print(f"wrote {out}: {vecs.n_layers} layers x {vecs.hidden_size}, from {len(items)} items "
          f"(norm min {norms.min():.3g}, max {norms.max():.3g} at layer {int(norms.argmax())})")
    return 0


def cmd_sweep(args) -> int:
    from .data import load_dataset
    from .report import plot_layer_sweep
    from .sweep import SweepConfig, run_sweep
    from .vectors import SteeringVectors

    _check_common(args)
    config = SweepConfig(layers=parse_layers(args.layers), multipliers=parse_floats(args.multipliers),
                         positions=args.positions, template=args.template, system=args.system,
                         batch_size=args.batch_size, seed=args.seed, engine=args.engine)
    # everything but the layer range is checked before loading; duplicate multipliers are merged here, once
    config = replace(config, multipliers=replace(config, layers=None).validate(1).multipliers)
    out_path = check_output_folder(args.out)
    items = load_dataset(args.data, limit=args.limit)
    vecs = SteeringVectors.load(args.vectors) if args.vectors else None
    train = None if vecs is not None else load_dataset(args.train_data, limit=args.train_limit)
    out = check_writable_folder(out_path)
    if wants_cluster(args):
        return cluster_sweep(args, config, items, vecs, train, out)
    model, tok, info = _load(args)
    config.validate(info.n_layers)
    _check_items_fit(model, tok, args, items, args.data)
    if train:
        _check_items_fit(model, tok, args, train, args.train_data)
    if vecs is None:
        vecs = _train_or_resume_vectors(args, out / "vectors.safetensors", model, tok, info, train)
    else:
        _vectors_for(args, vecs, model, info)
    result = run_sweep(model, tok, vecs, items, config, info=info, out_dir=out)
    plot_layer_sweep(result.aggregate, out / "layer_sweep")
    _print_summary(result)
    _warn_saturated("sweep", result.rows)
    print(f"wrote {out}/items.csv, aggregate.csv, manifest.json, layer_sweep.png")
    return 0


def _check_items_fit(model, tok, args, items, source) -> None:
    """A/B items (prompt, '(' and the answer letter) must fit the model's context."""
    check_context(model, tok, [(it.id, it.question) for it in items], args.template, args.system, extra=2,
                  what=f"{source}: item", extra_what="for '(' and the answer letter")


def _train_or_resume_vectors(args, path: Path, model, tok, info, train):
    """Vectors for a sweep run folder: reuse the folder's file when it was trained the same way (resume)."""
    from .data import dataset_hash
    from .vectors import SteeringVectors, train_vectors

    want = {"model": info.name, "n_layers": info.n_layers, "hidden_size": info.hidden_size,
            "dataset_hash": dataset_hash(train), "n_items": len(train), "template": args.template,
            "system": args.system or "", "normalization": args.normalize}
    if path.exists():
        old = SteeringVectors.load(path)
        diffs = [f"{k}: {old.meta.get(k)!r} vs {v!r}" for k, v in want.items() if old.meta.get(k) != v]
        if diffs:
            raise SteerscaleError(f"{path}: trained with a different setup ({'; '.join(diffs)}; old vs new); "
                                  f"use a new --out folder or delete this one")
        return old
    vecs = train_vectors(model, tok, train, args.template, args.system, args.normalize, args.batch_size,
                         cache_dir=path.parent / "cache", info=info)
    vecs.meta["dataset"] = str(args.train_data)
    vecs.save(path)  # atomic: a killed run leaves either no file or the whole file
    return vecs


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

    _check_common(args)
    if args.vectors is None and args.ablate is None:
        raise SteerscaleError("generate: give --vectors (steering) and/or --ablate (a direction file)")
    vecs = SteeringVectors.load(args.vectors) if args.vectors else None
    layers = parse_layers(args.layers)
    if layers is None:
        raise SteerscaleError("--layers: give the layer(s) to steer, e.g. 13 or 12-14")
    mults = list(dict.fromkeys(m + 0.0 for m in parse_floats(args.multipliers))) if vecs is not None else []
    ablated = _ablation_direction(args) if args.ablate else None
    model, tok, info = _load(args)
    if vecs is not None:
        _vectors_for(args, vecs, model, info)
    bad = [l for l in layers if not 0 <= l < info.n_layers] if vecs is not None else []  # --layers steers --vectors
    if bad:
        raise SteerscaleError(f"--layers {short(args.layers)}: layer {bad[0]} is out of range, this model has "
                              f"layers 0..{info.n_layers - 1}")
    check_context(model, tok, [("", args.prompt)], args.template, args.system, extra=args.max_new_tokens,
                  what="prompt")
    kw = dict(template=args.template, system=args.system, max_new_tokens=args.max_new_tokens)
    outputs = {"unsteered": generate(model, tok, [args.prompt], **kw)[0]}
    if ablated is not None:
        outputs.update(_generate_ablated(model, tok, args.prompt, ablated, kw))
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


def _print_findings(summary: dict) -> None:
    for r in summary["runs"]:
        print(f"{r['model']}: {r['status']} ({r['folder']})")
    for m in summary["models"]:
        peaks = "; ".join(f"{k} peak layer {p['layer']} (depth {p['depth']:.2f}) delta {p['delta']:+.3f} "
                          f"[{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}]" for k, p in m["peaks"].items())
        print(f"{m['model']}: baseline {m['baseline']:.3f}; {peaks}")
    for c in summary["claims"] + [v for oe in summary.get("openended", []) for v in oe["verdicts"]]:
        print(f"  [{c['verdict']}] {c['claim']} ({c.get('model', '')}): {c['why']}")
    print(f"wrote {summary['report_html']} and {summary['report_md']}")


def cmd_reproduce(args) -> int:
    from .reproduce import default_config_path, reproduce

    if args.print_config:
        print(default_config_path().read_text(), end="")
        return 0
    if args.config is not None:
        check_input_file(args.config, "a TOML config file")
    check_output_folder(args.out)
    _print_findings(reproduce(args.config, args.out, force=args.force))
    return 0


def cmd_report(args) -> int:
    from .reproduce import render

    folder = Path(args.folder)
    if not folder.is_dir():
        raise SteerscaleError(f"{folder}: no such folder; expected a 'steerscale reproduce' output folder")
    check_output_folder(folder, "folder")
    _print_findings(render(folder))
    return 0


COMMANDS = {"info": cmd_info, "train": cmd_train, "sweep": cmd_sweep, "generate": cmd_generate,
            "reproduce": cmd_reproduce, "report": cmd_report, "merge": cmd_merge}


_NUMERIC_LIST_FLAGS = ("--multipliers", "--multiplier", "--windows", "--widths")


def _join_negative_values(argv: list[str]) -> list[str]:
    """Let `--multipliers -1,0,1` work: argparse would take '-1,0,1' for an option."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in _NUMERIC_LIST_FLAGS and i + 1 < len(argv) and re.match(r"^-[\d.]", argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


# ----------------------------------------------------------------- open-ended, similarity, transfer (issue 6)


def parse_ints(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SteerscaleError(f"{flag} {text!r}: expected a comma list of integers, e.g. 0,6,12") from None


def add_openended_commands(sub) -> None:
    p = sub.add_parser(
        "openended", help="open-ended refusal, over-refusal and capability cost over layers/windows x multipliers",
        description="For every layer (or window of layers) and multiplier: refusal log-odds at the first response "
        "token on harmful and harmless prompts (one forward pass, no generation), greedy (and optionally sampled) "
        "generations on a subset scored by a refusal-phrase matcher (and optionally a judge), degeneration of the "
        "generations, and cross-entropy on neutral text. Writes logodds.csv, generations.csv, ce.csv, "
        "aggregate.csv, manifest.json and plots.")
    _model_args(p)
    _prompt_args(p)
    p.add_argument("--vectors", default=None, help="vectors from 'steerscale train' (default: train on --train-data)")
    p.add_argument("--allow-foreign-vectors", action="store_true",
                   help="steer with vectors whose metadata names another model of the same shape")
    p.add_argument("--train-data", default="refusal-train", help="A/B dataset for vectors when --vectors is not given")
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--normalize", default="none", choices=["none", "unit", "residual"])
    p.add_argument("--harmful", default="harmful-prompts", help="harmful prompts: built-in name or JSON/JSONL file")
    p.add_argument("--harmless", default="harmless-prompts", help="harmless prompts: built-in name or JSON/JSONL file")
    p.add_argument("--neutral", default="neutral-text", help="neutral paragraphs for cross-entropy")
    p.add_argument("--phrases", default=None, help="refusal-phrase list (JSON); default the built-in list")
    p.add_argument("--layers", default=None, help="single layers: 'all', '13', '0-29', '0,3,6' (default all, "
                   "or none when windows are given)")
    p.add_argument("--window-starts", default=None, help="multi-layer windows: comma list of first layers")
    p.add_argument("--window-widths", default=None, help="comma list of window widths (every start x width)")
    p.add_argument("--window-mode", default="per-layer", choices=["per-layer", "same"],
                   help="each layer its own vector, or the start layer's vector at every layer of the window")
    p.add_argument("--multipliers", default="-4,-2,0,2,4", help="comma list (default -4,-2,0,2,4)")
    p.add_argument("--positions", default="all", choices=["all", "instruction_end"])
    p.add_argument("--n-logodds", type=int, default=None, help="prompts per kind for log-odds (default all)")
    p.add_argument("--n-generate", type=int, default=4, help="prompts per kind to generate for (default 4; 0 = none)")
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--sampled", action="store_true", help="also sampled generation (seeded)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--n-neutral", type=int, default=None, help="neutral paragraphs for CE (default all 42; 0 = none)")
    p.add_argument("--ce-bound", type=float, default=None,
                   help="report the largest multiplier per point whose CE increase stays <= this (nats/token)")
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible endpoint (base URL or .../chat/completions)")
    p.add_argument("--judge-name", default="judge", help="model name sent to the judge endpoint")
    p.add_argument("--judge-key-env", default=None, help="environment variable holding the judge endpoint's API key")
    p.add_argument("--judge-timeout", type=float, default=30.0)
    p.add_argument("--judge-model", default=None, help="local judge: a model spec for load_model (chat model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", "-o", required=True, help="results folder")

    p = sub.add_parser("similarity", help="cosine similarity of vectors between layers and between behaviours",
                       description="Writes cosine.csv (behaviour_a, layer_a, behaviour_b, layer_b, cosine) and "
                       "heatmaps. Name vectors as NAME=FILE (default name: the file's stem).")
    p.add_argument("vectors", nargs="+", help="vector files from 'steerscale train', optionally NAME=FILE")
    p.add_argument("--normalize-across", action="store_true",
                   help="rescale each behaviour's vector to the mean norm across behaviours at each layer (CAA) "
                   "and save the results as NAME.normalized.safetensors in --out")
    p.add_argument("--out", "-o", required=True, help="results folder")

    p = sub.add_parser("transfer", help="steer one model with vectors made on another (same hidden size)",
                       description="Refusal log-odds effect of the vectors on the source model and on the target "
                       "model (layers mapped by relative depth, or same index), and their ratio.")
    p.add_argument("--vectors", required=True, help="vectors made on --source-model")
    p.add_argument("--source-model", required=True, help="the model the vectors were made on")
    _model_args(p)
    _prompt_args(p)
    p.add_argument("--layers", required=True, help="source layer(s) to steer, e.g. 15 or 12-14")
    p.add_argument("--multiplier", type=float, default=4.0)
    p.add_argument("--map", default="relative", choices=["relative", "same"])
    p.add_argument("--prompts", default="harmful-prompts")
    p.add_argument("--limit", type=int, default=16)
    p.add_argument("--json", action="store_true")


def cmd_openended(args) -> int:
    from .data import load_neutral_text, load_prompt_records, load_refusal_phrases
    from .openended import HFJudge, HTTPJudge, OpenEndedConfig, PhraseMatcher, run_openended
    from .report import plot_openended_layers, plot_tradeoff
    from .vectors import SteeringVectors, train_vectors

    _check_common(args)
    _at_least(args.n_logodds, 1, "--n-logodds", "a positive number of prompts (leave it out to use all)")
    _at_least(args.n_generate, 0, "--n-generate", "a number of prompts >= 0 (0 = no generation)")
    _at_least(args.n_neutral, 0, "--n-neutral", "a number of paragraphs >= 0 (0 = no cross-entropy)")
    _at_least(args.ce_bound, 0, "--ce-bound", "a number >= 0 (nats per token)")
    _at_least(args.judge_timeout, 0.001, "--judge-timeout", "a positive number of seconds")
    _at_least(args.temperature, 1e-6, "--temperature", "a positive number")
    layers = parse_layers(args.layers) if args.layers is not None else None
    if args.layers is None and args.window_starts:
        layers = []
    config = OpenEndedConfig(
        layers=layers, window_starts=parse_ints(args.window_starts or "", "--window-starts"),
        window_widths=parse_ints(args.window_widths or "", "--window-widths"), window_mode=args.window_mode,
        multipliers=parse_floats(args.multipliers), positions=args.positions, template=args.template,
        system=args.system, batch_size=args.batch_size, n_logodds=args.n_logodds, n_generate=args.n_generate,
        max_new_tokens=args.max_new_tokens, sampled=args.sampled, temperature=args.temperature,
        n_neutral=args.n_neutral, ce_bound=args.ce_bound, seed=args.seed)
    harmful, harmless = load_prompt_records(args.harmful), load_prompt_records(args.harmless)
    neutral = load_neutral_text(args.neutral)
    phrases = PhraseMatcher(load_refusal_phrases(args.phrases))
    vecs = SteeringVectors.load(args.vectors) if args.vectors else None
    judge = None
    if args.judge_url:
        key = None
        if args.judge_key_env:
            key = os.environ.get(args.judge_key_env)
            if not key:
                raise SteerscaleError(f"--judge-key-env {args.judge_key_env}: that environment variable is not set")
        judge = HTTPJudge(args.judge_url, args.judge_name, key, args.judge_timeout)
    out = _check_out_folder(args.out)
    model, tok, info = _load(args)
    config.points(info.n_layers)  # layers and windows against the model, before any work
    for source, prompts in ((args.harmful, harmful), (args.harmless, harmless)):  # the prompts this run uses
        check_context(model, tok, [(p.id, p.text) for p in prompts[: args.n_logodds]], args.template,
                      args.system, extra=1, what=f"{source}: prompt")
        check_context(model, tok, [(p.id, p.text) for p in prompts[: args.n_generate]], args.template,
                      args.system, extra=args.max_new_tokens, what=f"{source}: prompt")
    if vecs is not None:
        _vectors_for(args, vecs, model, info)
    if args.judge_model:
        from .models import load_model

        jm, jt, _ = load_model(args.judge_model, dtype=args.dtype, device=args.device)
        judge = HFJudge(jm, jt, batch_size=args.batch_size)
    if vecs is None:
        from .data import load_dataset

        train = load_dataset(args.train_data, limit=args.train_limit)
        vecs = train_vectors(model, tok, train, args.template, args.system, args.normalize, args.batch_size,
                             cache_dir=out / "cache", info=info)
        vecs.meta["dataset"] = str(args.train_data)
        vecs.save(out / "vectors.safetensors")
    res = run_openended(model, tok, vecs, harmful, harmless, neutral, config, info=info, phrases=phrases,
                        judge=judge, out_dir=out)
    plot_tradeoff(res.aggregate, out / "tradeoff")
    if any(r["width"] == 1 for r in res.aggregate):
        plot_openended_layers(res.aggregate, out / "openended_layers")
    _print_openended_summary(res)
    print(f"wrote {out}/aggregate.csv, logodds.csv, generations.csv, ce.csv, manifest.json, tradeoff.png")
    return 0


def _print_openended_summary(res) -> None:
    agg = res.aggregate
    b = next((r for r in agg if r["multiplier"] == 0.0), None)
    if b:
        print(f"{b['model']} unsteered: refusal log-odds harmful {b['logodds_harmful']:+.2f} "
              f"[{b['logodds_harmful_low']:+.2f}, {b['logodds_harmful_high']:+.2f}], harmless "
              f"{b['logodds_harmless']:+.2f}; phrase refusal harmful {b.get('phrase_refusal_harmful', float('nan')):.2f}"
              f", harmless {b.get('phrase_refusal_harmless', float('nan')):.2f}; CE {b.get('ce', float('nan')):.3f}")
    for m in sorted({r["multiplier"] for r in agg if r["multiplier"] != 0.0}):
        rows = [r for r in agg if r["multiplier"] == m]
        best = max(rows, key=lambda r: abs(r["delta_logodds_harmful"]))
        print(f"  m = {m:+g}: largest |log-odds change| at layers {best['layer_start']}-{best['layer_end']}: "
              f"harmful {best['delta_logodds_harmful']:+.2f}, harmless {best['delta_logodds_harmless']:+.2f}, "
              f"CE {best['ce_delta']:+.3f}, phrase refusal harmful {best.get('phrase_refusal_harmful', float('nan')):.2f}")
    if res.max_multiplier:
        print(f"  largest multiplier with CE increase <= {res.max_multiplier[0]['ce_bound']:g}: see max_multiplier.csv")


def _named_vectors(specs: list[str]) -> dict:
    from .vectors import SteeringVectors

    out = {}
    for s in specs:
        name, _, path = s.partition("=") if "=" in s else (Path(s).name.split(".")[0], "", s)
        if not name.strip():
            raise SteerscaleError(f"vectors {short(s)}: empty name; use NAME=FILE")
        if name in out:
            raise SteerscaleError(f"vectors: name {name!r} given twice; use NAME=FILE")
        out[name] = SteeringVectors.load(path)
    return out


def cmd_similarity(args) -> int:
    from .report import plot_cosine_heatmap
    from .store import inside, safe_name
    from .results import write_csv
    from .vectors import cosine_table, layer_cosine, normalize_across_behaviours

    vecs = _named_vectors(args.vectors)
    out = _check_out_folder(args.out)
    if args.normalize_across:
        vecs = normalize_across_behaviours(vecs)
        for name, v in vecs.items():
            v.save(inside(out, f"{safe_name(name)}.normalized.safetensors"))
    rows = cosine_table(vecs)
    write_csv(out / "cosine.csv", rows, ["behaviour_a", "layer_a", "behaviour_b", "layer_b", "cosine"])
    import numpy as np

    for name, v in vecs.items():
        c = layer_cosine(v).numpy()
        plot_cosine_heatmap(c, inside(out, f"cosine_layers_{safe_name(name)}"), labels=[str(i) for i in range(len(c))],
                            title=f"{name}: cosine between layers")
        adj = [float(c[i, i + 1]) for i in range(len(c) - 1)]
        print(f"{name}: {v.n_layers} layers; cosine of adjacent layers min {min(adj, default=1):.3f}, "
              f"median {float(np.median(adj)) if adj else 1:.3f}")
    names = list(vecs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            m = np.array([[r["cosine"] for r in rows if r["behaviour_a"] == a and r["behaviour_b"] == b
                           and r["layer_a"] == la] for la in range(vecs[a].n_layers)])
            plot_cosine_heatmap(m, inside(out, f"cosine_{safe_name(a)}_vs_{safe_name(b)}"), title=f"cosine: {a} (rows) vs {b} (columns)",
                                xlabel=f"{b} layer", ylabel=f"{a} layer")
            same = np.diag(m) if m.shape[0] == m.shape[1] else np.array([])
            if same.size:
                print(f"{a} vs {b}: same-layer cosine mean {same.mean():.3f}, max {same.max():.3f} at layer "
                      f"{int(same.argmax())}")
    print(f"wrote {out}/cosine.csv and heatmaps")
    return 0


def cmd_transfer(args) -> int:
    from .data import load_prompts
    from .models import load_model
    from .openended import transfer_effect
    from .vectors import SteeringVectors

    _check_common(args)
    if not (args.multiplier == args.multiplier and abs(args.multiplier) != float("inf")):
        raise SteerscaleError(f"--multiplier {args.multiplier}: expected a finite number")
    vecs = SteeringVectors.load(args.vectors)
    layers = parse_layers(args.layers)
    if layers is None:
        raise SteerscaleError("--layers: give the source layer(s) to steer, e.g. 15 or 12-14")
    prompts = load_prompts(args.prompts, limit=args.limit)
    src = load_model(args.source_model, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)
    tgt = _load(args)
    vecs.check_model(src[0])
    r = transfer_effect(src[:2], tgt[:2], vecs, layers, args.multiplier, prompts, how=args.map,
                        template=args.template, system=args.system, batch_size=args.batch_size)
    r.update(source_model=src[2].name, target_model=tgt[2].name)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['source_model']} layers {r['source_layers']} -> {r['target_model']} layers {r['target_layers']} "
          f"({r['layer_map']} map), m = {r['multiplier']:+g}, {r['n_prompts']} prompts")
    print(f"  refusal log-odds effect: source {r['effect_source']:+.3f}, target {r['effect_target']:+.3f}, "
          f"ratio {r['ratio']:.2f}")
    return 0


COMMANDS.update({"openended": cmd_openended, "similarity": cmd_similarity, "transfer": cmd_transfer})


# ----------------------------------------------------------------- ablation, orthogonalisation, export/import (issue 13)


def add_intervention_commands(sub) -> None:
    p = sub.add_parser(
        "ablation", help="refusal direction: candidates, layer selection, ablation vs actadd comparison",
        description="Split the harmful/harmless prompts into train/validation/test (seeded). Candidates: "
        "mean(harmful) - mean(harmless) of each layer's output at the last prompt token (train split), or the "
        "--vectors file. Selection (validation split): lowest refusal log-odds on harmful prompts under ablation, "
        "among layers with KL <= --kl-threshold on harmless prompts and outside the last --prune fraction. "
        "Comparison (test split): baseline, ablation (every layer), actadd (multiplier x vector at the layer): "
        "refusal log-odds on harmful and harmless prompts, CE on neutral text, with bootstrap intervals. Writes "
        "aggregate.csv, items.csv, ce.csv, selection.csv, manifest.json and directions.safetensors.")
    _model_args(p)
    _prompt_args(p)
    p.add_argument("--vectors", default=None, help="candidate vectors (e.g. A/B vectors from 'train') instead "
                   "of harmful-minus-harmless directions")
    p.add_argument("--harmful", default="harmful-prompts")
    p.add_argument("--harmless", default="harmless-prompts")
    p.add_argument("--neutral", default="neutral-text")
    p.add_argument("--layers", default="all", help="candidate layers (default all)")
    p.add_argument("--layer", type=int, default=None, help="skip selection and use this layer")
    p.add_argument("--kl-threshold", type=float, default=0.1, help="max KL on harmless prompts (<0: no bound)")
    p.add_argument("--prune", type=float, default=0.2, help="drop candidates in the last fraction of layers")
    p.add_argument("--induce-threshold", type=float, default=None,
                   help="drop candidates whose addition leaves harmless refusal log-odds below this")
    p.add_argument("--multipliers", default="-1,1", help="actadd multipliers (default -1,1)")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--out", "-o", required=True, help="results folder")

    p = sub.add_parser("orthogonalize", help="bake directional ablation into the weights; write a model folder",
                       description="Project the direction out of the embedding and of every attention-output and "
                       "MLP-down weight (and bias); untie tied embeddings. Checks that the edited model's logits "
                       "equal hooked ablation's on a probe, then writes a safetensors model folder with the "
                       "tokenizer, loadable with --model FOLDER.")
    _model_args(p)
    p.add_argument("--direction", required=True, help="vectors file (e.g. directions.safetensors from 'ablation')")
    p.add_argument("--direction-layer", type=int, default=None, help="layer of the direction (default: the "
                   "file's selected_layer)")
    p.add_argument("--out", "-o", required=True, help="output model folder")

    p = sub.add_parser("export", help="write vectors for another runtime (llama.cpp control vector GGUF)",
                       description="llama.cpp: tensor direction.L = multiplier x vector[L] for steerscale layer L "
                       "(output of decoder layer L; llama.cpp adds direction.N to the output of its block N, so "
                       "the index is the same; layer 0 cannot be expressed). Use with llama-cli --control-vector.")
    p.add_argument("--format", default="llama.cpp", choices=["llama.cpp"])
    p.add_argument("vectors", help="vectors file from 'steerscale train'")
    p.add_argument("output", help="output .gguf file")
    p.add_argument("--layers", default=None, help="layers to write, e.g. 10-20 (default 1..n_layers-1)")
    p.add_argument("--multiplier", type=float, default=1.0)
    p.add_argument("--model-hint", default=None, help="model type recorded in the file (default from the vectors)")

    p = sub.add_parser("import", help="read a llama.cpp/repeng control vector or steering-vectors file",
                       description="Convert a control-vector .gguf (direction.N -> layer N) or a steering-vectors "
                       ".safetensors (layer_activations.L tensors) into a steerscale vectors file for sweep, "
                       "openended or generate. Pickle files are refused.")
    p.add_argument("input", help=".gguf or .safetensors file")
    p.add_argument("--n-layers", type=int, required=True, help="layer count of the model you will steer")
    p.add_argument("--out", "-o", required=True, help="output .safetensors file")


def _ablation_direction(args):
    from .interventions import direction_from_file

    return direction_from_file(args.ablate, args.direction_layer)


def _generate_ablated(model, tok, prompt, ablated, kw) -> dict:
    from .evaluate import generate
    from .steering import ablate

    d, layer = ablated
    with ablate(model, d):
        return {f"ablated(layer {layer} direction)": generate(model, tok, [prompt], **kw)[0]}


def cmd_ablation(args) -> int:
    from .data import load_neutral_text, load_prompt_records
    from .interventions import run_ablation_study
    from .vectors import SteeringVectors

    harmful, harmless = load_prompt_records(args.harmful), load_prompt_records(args.harmless)
    neutral = load_neutral_text(args.neutral)
    vecs = SteeringVectors.load(args.vectors) if args.vectors else None
    mults = parse_floats(args.multipliers)
    out = check_writable_folder(Path(args.out))
    model, tok, info = _load(args)
    if vecs is not None:
        vecs.check_model(model)
    kl = None if args.kl_threshold is not None and args.kl_threshold < 0 else args.kl_threshold
    res, vecs = run_ablation_study(model, tok, harmful, harmless, neutral, vecs, args.layer, parse_layers(args.layers),
                                   mults, kl, args.prune, args.induce_threshold, args.split_seed, args.template,
                                   args.system, args.batch_size, seed=args.seed, info=info, out_dir=out)
    layer = vecs.meta["selected_layer"]
    print(f"{info.name}: direction from layer {layer} (output of decoder layer {layer}); test prompts "
          f"{res.aggregate[0]['n_harmful']} harmful, {res.aggregate[0]['n_harmless']} harmless")
    for r in res.aggregate:
        ce = f", CE change {r['ce_delta']:+.3f} [{r['ce_delta_low']:+.3f}, {r['ce_delta_high']:+.3f}]" \
            if r.get("ce_delta") is not None else ""
        print(f"  {r['condition']:>12s}: refusal log-odds harmful {r['logodds_harmful']:+.2f} "
              f"(change {r['delta_logodds_harmful']:+.2f} [{r['delta_logodds_harmful_low']:+.2f}, "
              f"{r['delta_logodds_harmful_high']:+.2f}]), harmless {r['logodds_harmless']:+.2f} "
              f"(change {r['delta_logodds_harmless']:+.2f}){ce}")
    print(f"wrote {out}/aggregate.csv, items.csv, ce.csv, selection.csv, manifest.json, directions.safetensors")
    return 0


def cmd_orthogonalize(args) -> int:
    from .interventions import direction_from_file
    from .orthogonalization import save_orthogonalized

    d, layer = direction_from_file(args.direction, args.direction_layer)
    out = check_writable_folder(Path(args.out))
    model, tok, info = _load(args)
    save_orthogonalized(model, tok, d, out, meta={"source_model": info.spec, "direction_file": str(args.direction),
                                                  "direction_layer": layer})
    summary = json.loads((out / "steerscale_orthogonalize.json").read_text())
    print(f"wrote {out}: {info.name} with the layer-{layer} direction projected out of "
          f"{len(summary['edited_parameters'])} weights"
          + (" (embeddings untied)" if summary["untied_embeddings"] else "")
          + f"; edited vs hooked logits max |diff| {summary['check_max_abs_diff']:.2g}")
    return 0


def cmd_export(args) -> int:
    from .interop import export_llama_cpp
    from .vectors import SteeringVectors

    vecs = SteeringVectors.load(args.vectors)
    out = Path(args.output)
    check_writable_folder(out.parent if str(out.parent) else Path("."))
    export_llama_cpp(vecs, out, parse_layers(args.layers), args.multiplier, args.model_hint)
    print(f"wrote {out}: llama.cpp control vector, direction.L = {args.multiplier:g} x vector[L]; "
          f"use: llama-cli -m MODEL.gguf --control-vector {out}")
    return 0


def cmd_import(args) -> int:
    from .interop import import_vectors

    vecs = import_vectors(args.input, n_layers=args.n_layers)
    out = Path(args.out)
    check_writable_folder(out.parent if str(out.parent) else Path("."))
    vecs.save(out)
    print(f"wrote {out}: {vecs.n_layers} layers x {vecs.hidden_size}, vectors at layers {vecs.meta['layers_present']}")
    return 0


COMMANDS.update({"ablation": cmd_ablation, "orthogonalize": cmd_orthogonalize, "export": cmd_export,
                 "import": cmd_import})


def main(argv: list[str] | None = None) -> int:
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except SteerscaleError as e:
        if args.debug:
            raise
        print(f"steerscale {args.command}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # a file problem no stage caught: still one line, with the path
        if args.debug:
            raise
        print(f"steerscale {args.command}: error: {os_error(e.filename or '?', e, 'cannot access')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"steerscale {args.command}: interrupted (finished points are kept; re-run to continue)", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: say so, one line, exit 1
        if args.debug:
            raise
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        print(f"steerscale {args.command}: internal error: {type(e).__name__}: {first} "
              f"(re-run with --debug for the traceback)", file=sys.stderr)
        return 1


def _one_line(msg: str, limit: int = 2000) -> str:
    """Error messages are one line of bounded length, whatever user value they quote."""
    msg = " ".join(msg.splitlines())
    return msg if len(msg) <= limit else f"{msg[:limit]}... ({len(msg) - limit} more characters)"


if __name__ == "__main__":
    sys.exit(main())
