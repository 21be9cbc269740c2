"""Open-ended commands: openended (refusal, over-refusal and capability cost), similarity, transfer."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from ..config import JudgeOptions, OpenEndedConfig, check_multiplier
from .fields import OpenEndedCommandOptions, SimilarityOptions, TransferOptions
from ..reproduce.config import OpenEndedSection
from ..errors import SteerscaleError
from ..io.guards import short
from ..core.checks import check_context, check_layers_present
from ..core.models import resolve_layers
from .common import Command, check_out_folder, check_vectors, load, run_vectors
from .options import (add_fields, config_from_args, json_arg, model_args, out_arg, parse_layers, prompt_args,
                      vector_args)

OPENENDED_FLAGS = ["layers", "window_starts", "window_widths", "window_mode", "multipliers", "positions", "n_logodds",
                   "n_generate", "max_new_tokens", "sampled", "temperature", "n_neutral", "ce_bound"]


def _openended_args(p) -> None:
    model_args(p)
    prompt_args(p)
    vector_args(p)
    add_fields(p, OpenEndedSection, ["harmful", "harmless", "neutral"])
    add_fields(p, OpenEndedCommandOptions)  # --phrases
    add_fields(p, OpenEndedConfig, OPENENDED_FLAGS, layers=None)
    add_fields(p, JudgeOptions, ["judge_url", "judge_name", "judge_key_env", "judge_timeout", "judge_model"])
    add_fields(p, OpenEndedConfig, ["seed"])
    out_arg(p)


def cmd_openended(args) -> int:
    from ..core.data import load_dataset, load_neutral_text, load_prompt_records, load_refusal_phrases
    from ..measures.judges import HFJudge, HTTPJudge
    from ..measures.refusal import PhraseMatcher
    from ..openended.run import run_openended
    from ..report.plots import plot_openended_layers, plot_tradeoff
    from ..core.vectors import SteeringVectors

    layers = parse_layers(args.layers) if args.layers is not None else None
    if args.layers is None and args.window_starts:
        layers = []
    config = config_from_args(OpenEndedConfig, args, layers=layers)
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
    out = check_out_folder(args.out)
    model, tok, info = load(args)
    config = replace(config, batch_size=args.batch_size)  # --batch-size auto is known once the model is loaded
    points = config.points(info.n_layers)  # layers and windows against the model, before any work
    for source, prompts in ((args.harmful, harmful), (args.harmless, harmless)):  # the prompts this run uses
        check_context(model, tok, [(p.id, p.text) for p in prompts[: args.n_logodds]], template=args.template,
                      system=args.system, extra=1, what=f"{source}: prompt")
        check_context(model, tok, [(p.id, p.text) for p in prompts[: args.n_generate]], template=args.template,
                      system=args.system, extra=args.max_new_tokens, what=f"{source}: prompt")
    if vecs is not None:
        check_vectors(args, vecs, model, info)
        check_layers_present(vecs, sorted({l for a, b in points for l in range(a, b + 1)}))
    if args.judge_model:
        from ..core.models import load_model

        jm, jt, _ = load_model(args.judge_model, dtype=args.dtype, device=args.device)
        judge = HFJudge(jm, jt, batch_size=args.batch_size)
    if vecs is None:
        vecs = run_vectors(args, out, model, tok, info, train=load_dataset(args.train_data, limit=args.train_limit))
    res = run_openended(model, tok, vecs, harmful=harmful, harmless=harmless, neutral=neutral, config=config,
                        info=info, phrases=phrases, judge=judge, out_dir=out)
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
    from ..core.vectors import SteeringVectors

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
    from ..report.plots import plot_cosine_heatmap
    from ..io.store import inside, safe_name
    from ..io.results import write_csv
    from ..core.vectors import cosine_table, layer_cosine, normalize_across_behaviours

    vecs = _named_vectors(args.vectors)
    out = check_out_folder(args.out)
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
    from ..core.data import load_prompts
    from ..core.models import load_model
    from ..measures.transfer import transfer_effect
    from ..core.vectors import SteeringVectors

    opts = config_from_args(TransferOptions, args)
    check_multiplier(opts.multiplier, "--multiplier")
    vecs = SteeringVectors.load(opts.vectors)
    layers = opts.layers
    if layers is None:
        raise SteerscaleError("--layers: give the source layer(s) to steer, e.g. 15 or 12-14")
    layers = resolve_layers(layers, vecs.n_layers, "--layers")  # source layers; -1 = the last
    check_layers_present(vecs, layers)
    prompts = load_prompts(opts.prompts, limit=opts.limit)
    src = load_model(opts.source_model, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)
    tgt = load(args)
    vecs.check_model(src[0])
    r = transfer_effect(src[:2], tgt[:2], vecs, layers=layers, multiplier=opts.multiplier, prompts=prompts,
                        how=opts.map, template=args.template, system=args.system, batch_size=args.batch_size)
    r.update(source_model=src[2].name, target_model=tgt[2].name)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['source_model']} layers {r['source_layers']} -> {r['target_model']} layers {r['target_layers']} "
          f"({r['layer_map']} map), m = {r['multiplier']:+g}, {r['n_prompts']} prompts")
    print(f"  refusal log-odds effect: source {r['effect_source']:+.3f}, target {r['effect_target']:+.3f}, "
          f"ratio {r['ratio']:.2f}")
    return 0


def _similarity_args(p) -> None:
    add_fields(p, SimilarityOptions)
    out_arg(p)


def _transfer_args(p) -> None:
    add_fields(p, TransferOptions, ["vectors", "source_model"])
    model_args(p)
    prompt_args(p)
    add_fields(p, TransferOptions, ["layers", "multiplier", "map", "prompts", "limit"])
    json_arg(p)


COMMANDS = {
    "openended": Command(
        "open-ended refusal, over-refusal and capability cost over layers/windows x multipliers", _openended_args,
        cmd_openended,
        "For every layer (or window of layers) and multiplier: refusal log-odds at the first response token on "
        "harmful and harmless prompts (one forward pass, no generation), greedy (and optionally sampled) "
        "generations on a subset scored by a refusal-phrase matcher (and optionally a judge), degeneration of the "
        "generations, and cross-entropy on neutral text. Writes logodds.csv, generations.csv, ce.csv, "
        "aggregate.csv, manifest.json and plots."),
    "similarity": Command("cosine similarity of vectors between layers and between behaviours", _similarity_args,
                          cmd_similarity, "Writes cosine.csv (behaviour_a, layer_a, behaviour_b, layer_b, cosine) "
                          "and heatmaps. Name vectors as NAME=FILE (default name: the file's stem)."),
    "transfer": Command("steer one model with vectors made on another (same hidden size)", _transfer_args,
                        cmd_transfer, "Refusal log-odds effect of the vectors on the source model and on the "
                        "target model (layers mapped by relative depth, or same index), and their ratio."),
}
