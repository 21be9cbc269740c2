"""Intervention commands: ablation (refusal direction), orthogonalize (bake it into weights), export, import."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from ..config import MAX_SEED, AblationRecipe, check_multiplier
from ..errors import SteerscaleError
from ..core.models import resolve_layers
from ..io.outputs import check_out_file
from .common import Command, check_out_folder, load
from .options import add_fields, config_from_args, model_args, out_arg, parse_floats, parse_layers, prompt_args


def _ablation_args(p) -> None:
    model_args(p)
    prompt_args(p)
    p.add_argument("--vectors", default=None, help="candidate vectors (e.g. A/B vectors from 'train') instead "
                   "of harmful-minus-harmless directions")
    p.add_argument("--harmful", default="harmful-prompts", help="harmful prompts: built-in name or JSON/JSONL file")
    p.add_argument("--harmless", default="harmless-prompts", help="harmless prompts: built-in name or JSON/JSONL file")
    p.add_argument("--neutral", default="neutral-text", help="neutral paragraphs for cross-entropy")
    p.add_argument("--layers", default="all", help="candidate layers (default all)")
    p.add_argument("--layer", type=int, default=None, help="skip selection and use this layer")
    add_fields(p, AblationRecipe, [f.name for f in fields(AblationRecipe)])  # refusal_direction's recipe
    p.add_argument("--multipliers", default="-1,1", help="actadd multipliers (default -1,1)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the selection/evaluation split of the prompts")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    out_arg(p)


def _orthogonalize_args(p) -> None:
    model_args(p)
    p.add_argument("--direction", required=True, help="vectors file (e.g. directions.safetensors from 'ablation')")
    p.add_argument("--direction-layer", type=int, default=None, help="layer of the direction (default: the "
                   "file's selected_layer)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder (atomically: the old "
                   "folder stays intact until the new one is complete)")
    p.add_argument("--allow-foreign-vectors", action="store_true",
                   help="use a direction file whose metadata names another model")
    out_arg(p, "output model folder (a new or empty folder; --force to replace one)")


def _export_args(p) -> None:
    p.add_argument("--format", default="llama.cpp", choices=["llama.cpp"], help="output format")
    p.add_argument("vectors", help="vectors file from 'steerscale train'")
    p.add_argument("output", help="output .gguf file")
    p.add_argument("--layers", default=None, help="layers to write, e.g. 10-20 (default 1..n_layers-1)")
    p.add_argument("--multiplier", type=float, default=1.0, help="each written tensor is multiplier x vector[L]")
    p.add_argument("--model-hint", default=None, help="model type recorded in the file (default from the vectors)")


def _import_args(p) -> None:
    p.add_argument("input", help=".gguf or .safetensors file")
    p.add_argument("--n-layers", type=int, required=True, help="layer count of the model you will steer")
    out_arg(p, "output .safetensors file")


def cmd_ablation(args) -> int:
    from ..core.data import load_neutral_text, load_prompt_records
    from ..interventions.recipe import check_recipe
    from ..interventions.ablation import run_ablation_study
    from ..core.vectors import SteeringVectors

    harmful, harmless = load_prompt_records(args.harmful), load_prompt_records(args.harmless)
    neutral = load_neutral_text(args.neutral)
    vecs = SteeringVectors.load(args.vectors) if args.vectors else None
    mults = [check_multiplier(m, "--multipliers value") for m in parse_floats(args.multipliers)]
    for flag, v in (("--seed", args.seed), ("--split-seed", args.split_seed)):
        if not 0 <= v <= MAX_SEED:
            raise SteerscaleError(f"{flag} {v}: expected an integer 0..{MAX_SEED}")
    recipe = config_from_args(AblationRecipe, args)
    check_recipe(recipe)
    out = check_out_folder(args.out)
    model, tok, info = load(args)
    if vecs is not None:
        vecs.check_model(model)
    cands, layer = parse_layers(args.layers), args.layer  # -1 = the last layer
    cands = None if cands is None else resolve_layers(cands, info.n_layers, "--layers")
    layer = None if layer is None else resolve_layers([layer], info.n_layers, "--layer")[0]
    res, vecs = run_ablation_study(model, tok, harmful, harmless, neutral, vectors=vecs, layer=layer,
                                   candidate_layers=cands, multipliers=mults, recipe=recipe,
                                   split_seed=args.split_seed, template=args.template, system=args.system,
                                   batch_size=args.batch_size, seed=args.seed, info=info, out_dir=out)
    layer, pos = vecs.meta["selected_layer"], vecs.meta["selected_position"]
    rec = res.manifest["recipe"]
    print(f"{info.name}: direction from layer {layer} (output of decoder layer {layer}), prompt position {pos} "
          f"(of {rec['n_candidate_positions']} candidate positions); test prompts "
          f"{res.aggregate[0]['n_harmful']} harmful, {res.aggregate[0]['n_harmless']} harmless")
    print(f"recipe: {'refusal_direction' if rec['is_reference_recipe'] else 'custom'}; differences from "
          f"{rec['reference']}:")
    for d in rec["differences_from_reference"]:
        print(f"  - {d}")
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
    from ..interventions.ablation import direction_from_file
    from ..interventions.orthogonalize import save_orthogonalized

    from ..io.guards import check_foreign_vectors
    from ..core.models import resolve_spec
    from ..io.outputs import check_out_folder_target
    from ..core.vectors import SteeringVectors

    d, layer = direction_from_file(args.direction, args.direction_layer)
    path, kw = resolve_spec(args.model)
    if "gguf_file" in kw:  # refused before loading and projecting: the edited model could not be saved
        raise SteerscaleError(f"orthogonalize --model {args.model}: a GGUF (quantised) model cannot be saved as an "
                              f"edited safetensors folder; use the original safetensors model (hub id or folder)")
    sources = [path] if Path(path).exists() else []
    out = check_out_folder_target(args.out, args.force, sources)  # before the load; checked again when writing
    model, tok, info = load(args)
    check_foreign_vectors(SteeringVectors.load(args.direction), info, args.allow_foreign_vectors)
    out = save_orthogonalized(model, tok, d, out, meta={"source_model": info.spec,
                                                        "direction_file": str(args.direction),
                                                        "direction_layer": layer}, force=args.force, sources=sources)
    summary = json.loads((out / "steerscale_orthogonalize.json").read_text())
    print(f"wrote {out}: {info.name} with the layer-{layer} direction projected out of "
          f"{len(summary['edited_parameters'])} weights"
          + (" (embeddings untied)" if summary["untied_embeddings"] else "")
          + f"; edited vs hooked logits max |diff| {summary['check_max_abs_diff']:.2g}")
    return 0


def cmd_export(args) -> int:
    from ..core.vectors import SteeringVectors

    vecs = SteeringVectors.load(args.vectors)
    out = check_out_file(args.output, "export: output", "a .gguf file name", suffix=".gguf")
    vecs.export_gguf(out, parse_layers(args.layers), args.multiplier, args.model_hint)  # -1 = the last layer
    print(f"wrote {out}: llama.cpp control vector, direction.L = {args.multiplier:g} x vector[L]; "
          f"use: llama-cli -m MODEL.gguf --control-vector {out}")
    return 0


def cmd_import(args) -> int:
    from ..io.interop import import_vectors

    out = check_out_file(args.out, "--out", "a .safetensors file name")
    vecs = import_vectors(args.input, n_layers=args.n_layers)
    vecs.save(out)
    print(f"wrote {out}: {vecs.n_layers} layers x {vecs.hidden_size}, vectors at layers {vecs.meta['layers_present']}")
    return 0

COMMANDS = {
    "ablation": Command(
        "refusal direction: candidates, layer selection, ablation vs actadd comparison", _ablation_args, cmd_ablation,
        "refusal_direction's recipe by default (Arditi et al. 2024; each difference is an option, and the "
        "manifest and summary list every one). Split the harmful/harmless prompts into train/validation/test "
        "(seeded); keep train/validation prompts by baseline refusal (--filter-prompts). Candidates: "
        "mean(harmful) - mean(harmless) of each layer's output at each post-instruction token (train split), or "
        "the --vectors file. Selection (validation split): lowest refusal log-odds on harmful prompts under "
        "ablation, among candidates with KL <= --kl-threshold on harmless prompts, whose addition makes harmless "
        "prompts refused (--induce-filter) and outside the last --prune fraction (--prune-rule). "
        "Comparison (test split): baseline, ablation (every layer), actadd (multiplier x vector at the layer): "
        "refusal log-odds on harmful and harmless prompts, CE on neutral text, with bootstrap intervals. Writes "
        "aggregate.csv, items.csv, ce.csv, selection.csv, manifest.json and directions.safetensors."),
    "orthogonalize": Command(
        "bake directional ablation into the weights; write a model folder", _orthogonalize_args, cmd_orthogonalize,
        "Project the direction out of the embedding and of every attention-output and MLP-down weight (and bias); "
        "untie tied embeddings. Checks that the edited model's logits equal hooked ablation's on a probe, then "
        "writes a safetensors model folder with the tokenizer, loadable with --model FOLDER."),
    "export": Command(
        "write vectors for another runtime (llama.cpp control vector GGUF)", _export_args, cmd_export,
        "llama.cpp: tensor direction.L = multiplier x vector[L] for steerscale layer L (output of decoder layer L; "
        "llama.cpp adds direction.N to the output of its block N, so the index is the same; layer 0 cannot be "
        "expressed). Use with llama-cli --control-vector."),
    "import": Command(
        "read a llama.cpp/repeng control vector or steering-vectors file", _import_args, cmd_import,
        "Convert a control-vector .gguf (direction.N -> layer N) or a steering-vectors .safetensors "
        "(layer_activations.L tensors) into a steerscale vectors file for sweep, openended or generate. Pickle "
        "files are refused."),
}
