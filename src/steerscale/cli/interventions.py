"""Intervention commands: ablation (refusal direction), orthogonalize (bake it into weights), export, import."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import AblationRecipe, check_multipliers
from .fields import AblationOptions, ExportOptions, ImportOptions, OrthogonalizeOptions
from ..core.models import resolve_layers
from ..errors import SteerscaleError
from ..io.outputs import check_out_file
from .common import Command, check_out_folder, load
from .options import add_fields, config_from_args, model_args, out_arg, parse_layers, prompt_args


def _ablation_args(p) -> None:
    model_args(p)
    prompt_args(p)
    add_fields(p, AblationOptions, ["vectors", "harmful", "harmless", "neutral", "layers", "layer"])
    add_fields(p, AblationRecipe)  # refusal_direction's recipe
    add_fields(p, AblationOptions, ["multipliers", "split_seed", "seed"])
    out_arg(p)


def _orthogonalize_args(p) -> None:
    model_args(p)
    add_fields(p, OrthogonalizeOptions)
    out_arg(p, "output model folder (a new or empty folder; --force to replace one)")


def _export_args(p) -> None:
    add_fields(p, ExportOptions)


def _import_args(p) -> None:
    add_fields(p, ImportOptions)
    out_arg(p, "output .safetensors file")


def cmd_ablation(args) -> int:
    from ..core.data import load_neutral_text, load_prompt_records
    from ..interventions.recipe import check_recipe
    from ..interventions.ablation import run_ablation_study
    from ..core.vectors import SteeringVectors

    opts = config_from_args(AblationOptions, args)  # --seed and --split-seed were checked by check_options
    harmful, harmless = load_prompt_records(opts.harmful), load_prompt_records(opts.harmless)
    neutral = load_neutral_text(opts.neutral)
    vecs = SteeringVectors.load(opts.vectors) if opts.vectors else None
    mults = check_multipliers(opts.multipliers, "--multipliers")  # kept order: the conditions' order
    recipe = config_from_args(AblationRecipe, args)
    check_recipe(recipe)
    out = check_out_folder(args.out)
    model, tok, info = load(args)
    if vecs is not None:
        vecs.check_model(model)
    cands, layer = opts.layers, opts.layer  # -1 = the last layer
    cands = None if cands is None else resolve_layers(cands, info.n_layers, "--layers")
    layer = None if layer is None else resolve_layers([layer], info.n_layers, "--layer")[0]
    res, vecs = run_ablation_study(model, tok, harmful, harmless, neutral, vectors=vecs, layer=layer,
                                   candidate_layers=cands, multipliers=mults, recipe=recipe,
                                   split_seed=opts.split_seed, template=args.template, system=args.system,
                                   batch_size=args.batch_size, seed=opts.seed, info=info, out_dir=out)
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

    from ..core.checks import check_foreign_vectors
    from ..core.models import resolve_spec
    from ..io.outputs import check_out_folder_target
    from ..core.vectors import SteeringVectors

    opts = config_from_args(OrthogonalizeOptions, args)
    d, layer = direction_from_file(opts.direction, opts.direction_layer)
    path, kw = resolve_spec(args.model)
    if "gguf_file" in kw:  # refused before loading and projecting: the edited model could not be saved
        raise SteerscaleError(f"orthogonalize --model {args.model}: a GGUF (quantised) model cannot be saved as an "
                              f"edited safetensors folder; use the original safetensors model (hub id or folder)")
    sources = [path] if Path(path).exists() else []
    out = check_out_folder_target(args.out, opts.force, sources)  # before the load; checked again when writing
    model, tok, info = load(args)
    check_foreign_vectors(SteeringVectors.load(opts.direction), info, opts.allow_foreign_vectors)
    out = save_orthogonalized(model, tok, d, out, meta={"source_model": info.spec,
                                                        "direction_file": str(opts.direction),
                                                        "direction_layer": layer}, force=opts.force, sources=sources)
    summary = json.loads((out / "steerscale_orthogonalize.json").read_text())
    print(f"wrote {out}: {info.name} with the layer-{layer} direction projected out of "
          f"{len(summary['edited_parameters'])} weights"
          + (" (embeddings untied)" if summary["untied_embeddings"] else "")
          + f"; edited vs hooked logits max |diff| {summary['check_max_abs_diff']:.2g}")
    return 0


def cmd_export(args) -> int:
    from ..core.vectors import SteeringVectors

    opts = config_from_args(ExportOptions, args)
    vecs = SteeringVectors.load(opts.vectors)
    out = check_out_file(opts.output, "export: output", "a .gguf file name", suffix=".gguf")
    vecs.export_gguf(out, layers=parse_layers(opts.layers), multiplier=opts.multiplier,  # -1 = the last layer
                     model_hint=opts.model_hint)
    print(f"wrote {out}: llama.cpp control vector, direction.L = {opts.multiplier:g} x vector[L]; "
          f"use: llama-cli -m MODEL.gguf --control-vector {out}")
    return 0


def cmd_import(args) -> int:
    from ..core.interop import import_vectors

    opts = config_from_args(ImportOptions, args)
    out = check_out_file(args.out, "--out", "a .safetensors file name")
    vecs = import_vectors(opts.input, n_layers=opts.n_layers)
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
