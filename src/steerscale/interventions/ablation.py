"""Ablation beside addition: refusal-direction candidates, layer selection on a validation split, and the
whole study (`run_ablation_study`) that ends in a comparison of baseline, directional ablation and activation
addition on the same test items (interventions/compare.py).

Recipe (refusal_direction's by default, after Arditi et al. 2024, andyrdt/refusal_direction; steerscale's own
code; the rules, their sources and every difference a run records: ablation_recipe.py, config.AblationRecipe):

* **prompt filter**: train and validation harmful prompts the model does not refuse (refusal log-odds <= 0)
  and harmless prompts it refuses (>= 0) are dropped (`filter_prompts`).
* **candidates** (`candidate_directions`): per prompt position p among the post-instruction tokens of the
  template and per layer L, mean over harmful prompts minus mean over harmless prompts of the output of
  decoder layer L at p. (refusal_direction reads the *input* of block L, i.e. steerscale's L - 1.) A/B
  CAA vectors (`train_vectors`) are an equally valid candidate set (one position).
* **selection** (`select_layer`), on validation prompts only: for each candidate whose layer is not pruned
  (`ablation_recipe.pruned`: refusal_direction's last-20% rule on their index), (a) mean refusal log-odds on
  harmful prompts under ablation of the candidate at every layer, (b) mean KL(unablated || ablated) of the
  next-token distribution after harmless prompts, (c) mean refusal log-odds on harmless prompts with the
  candidate *added* at its layer (x1). Candidates with KL > `kl_threshold` or (c) < `induce_threshold`
  (induce-refusal filter) are filtered; the lowest (a) wins.
* **comparison** (`compare_interventions`, interventions/compare.py), on test prompts: baseline, ablation
  (every layer, the chosen direction) and actadd (``multiplier x vector[L]`` added to the output of layer L,
  every position) for each multiplier, or any list of interventions (interventions/base.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
from tqdm.auto import tqdm

from .base import DEFAULT_MULTIPLIERS, Ablation, Addition, Intervention
from .compare import InterventionResult, as_prompts, compare_interventions
from .recipe import check_recipe, filter_split, post_instruction_count, pruned, recipe_record
from ..core.batching import batches, model_device, pad_id_of, pad_left
from ..core.data import split_items
from ..core.prompts import _encode, format_prompt
from ..config import AblationRecipe
from ..errors import SteerscaleError
from ..io.guards import short
from ..core.evaluate import last_logits
from ..core.models import model_info
from ..measures.refusal import PhraseMatcher, refusal_logodds
from ..core.steering import capture
from ..core.vectors import SteeringVectors

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ..core.models import ModelInfo


def _batch(tokenizer: PreTrainedTokenizerBase, texts: list[str], template: str, system: str | None, dev):
    ids = [_encode(tokenizer, format_prompt(tokenizer, t, template, system)) for t in texts]
    return pad_left(ids, pad_id_of(tokenizer)).to(dev)


@torch.no_grad()
def candidate_directions(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, harmful, harmless,
                         template: str = "chat", system: str | None = None, batch_size: int = 8,
                         info: ModelInfo | None = None, n_positions: int = 1) -> torch.Tensor:
    """[n_positions, n_layers, hidden]: mean(harmful) - mean(harmless) of each layer's output at each of the
    last `n_positions` prompt tokens (index 0 is position -n_positions, the last index position -1)."""
    harmful, harmless = as_prompts(harmful), as_prompts(harmless)
    if not harmful or not harmless:
        raise SteerscaleError("refusal directions need at least one harmful and one harmless prompt")
    info = info or model_info(model)
    dev = model_device(model)

    def mean_acts(prompts):
        total = torch.zeros(n_positions, info.n_layers, info.hidden_size, dtype=torch.float64)
        for idx in batches(len(prompts), batch_size):
            b = _batch(tokenizer, [prompts[i].text for i in idx], template, system, dev)
            with capture(model, position=slice(-n_positions, None)) as store:
                model(**b.model_inputs(), use_cache=False)
            for l in range(info.n_layers):
                total[:, l] += store[l][0].double().sum(0).cpu()
        return total / len(prompts)

    return (mean_acts(harmful) - mean_acts(harmless)).float()


def refusal_directions(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, harmful, harmless,
                       template: str = "chat", system: str | None = None, batch_size: int = 8,
                       info: ModelInfo | None = None, position: int = -1, n_positions: int | None = None
                       ) -> SteeringVectors:
    """Candidate refusal directions at one prompt position (default the last token): mean(harmful) -
    mean(harmless) of each layer's output. `n_positions` (>= -position) reuses `candidate_directions`."""
    harmful, harmless = as_prompts(harmful), as_prompts(harmless)
    info = info or model_info(model)
    n_positions = max(n_positions or 0, -position)
    diff = candidate_directions(model, tokenizer, harmful, harmless, template, system, batch_size, info,
                                n_positions)[n_positions + position]
    return SteeringVectors(diff, _direction_meta(info, template, system, harmful, harmless, position))


def _direction_meta(info, template, system, harmful, harmless, position: int) -> dict:
    where = "last token" if position == -1 else f"token {position}"
    return {"model": info.name, "model_spec": info.spec, "model_type": info.model_type, "n_layers": info.n_layers,
            "hidden_size": info.hidden_size, "kind": "refusal direction candidates",
            "read_at": f"output of decoder layer L, {where} of the formatted prompt", "position": position,
            "definition": "mean over harmful prompts - mean over harmless prompts", "template": template,
            "system": system or "", "n_harmful": len(harmful), "n_harmless": len(harmless),
            "harmful_ids": [p.id for p in harmful], "harmless_ids": [p.id for p in harmless],
            "normalization": "none"}


@torch.no_grad()
def _last_logprobs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], template: str,
                   system: str | None, batch_size: int) -> torch.Tensor:
    dev = model_device(model)
    out = []
    for idx in batches(len(prompts), batch_size):
        b = _batch(tokenizer, [prompts[i] for i in idx], template, system, dev)
        out.append(torch.log_softmax(last_logits(model, b.model_inputs()).double(), -1).cpu())
    return torch.cat(out)


def _kl(base_lp: torch.Tensor, new_lp: torch.Tensor) -> float:
    """Mean over prompts of KL(base || new), exact in float64 from log-probabilities."""
    return float((base_lp.exp() * (base_lp - new_lp)).sum(-1).mean())


@dataclass
class LayerSelection:
    """The chosen (position, layer), its raw candidate vector, and one row per candidate (filtered ones say why)."""

    layer: int
    direction: torch.Tensor
    rows: list[dict]
    config: dict = field(default_factory=dict)
    position: int = -1


def select_layer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 vectors: SteeringVectors | torch.Tensor, harmful_val, harmless_val, layers: list[int] | None = None,
                 kl_threshold: float | None = AblationRecipe.kl_threshold,
                 prune_fraction: float = AblationRecipe.prune,
                 induce_threshold: float | None = AblationRecipe.induce_threshold,
                 template: str = "chat", system: str | None = None, batch_size: int = 8,
                 phrases: PhraseMatcher | None = None, progress: bool = True,
                 prune_rule: str = AblationRecipe.prune_rule) -> LayerSelection:
    """Pick the candidate whose ablation lowers refusal most on validation prompts (see module doc).

    `vectors`: SteeringVectors or a [n_layers, hidden] tensor (one candidate per layer, position -1), or a
    [n_positions, n_layers, hidden] tensor from `candidate_directions` (positions -n_positions .. -1).
    Pruning: `ablation_recipe.pruned` with `prune_rule`; `induce_threshold=None` turns that filter off.
    """
    v = vectors.vectors if isinstance(vectors, SteeringVectors) else torch.as_tensor(vectors)
    v = v[None] if v.ndim == 2 else v
    n_pos, n = v.shape[0], v.shape[1]
    harmful_val, harmless_val = [p.text for p in as_prompts(harmful_val)], [p.text for p in as_prompts(harmless_val)]
    if not harmful_val or not harmless_val:
        raise SteerscaleError("layer selection needs validation harmful and harmless prompts")
    if not 0 <= prune_fraction < 1:
        raise SteerscaleError(f"prune_fraction {prune_fraction}: expected a number in [0, 1)")
    layers = list(range(n)) if layers is None else [int(l) for l in layers]
    for l in layers:
        if not 0 <= l < n:
            raise SteerscaleError(f"candidate layer {l} out of range: the vectors cover layers 0..{n - 1}")
    words = (phrases or PhraseMatcher()).opening_words()
    kw = dict(template=template, system=system, batch_size=batch_size)
    base_h = refusal_logodds(model, tokenizer, harmful_val, words, **kw).logodds.mean()
    base_hl = refusal_logodds(model, tokenizer, harmless_val, words, **kw).logodds.mean()
    base_lp = _last_logprobs(model, tokenizer, harmless_val, template, system, batch_size)
    rows = []
    cands = [(p, l) for p in range(n_pos) for l in layers]  # refusal_direction's order: position-major
    for p, l in tqdm(cands, desc="select direction", disable=not progress):
        d = v[p, l]
        row = {"position": p - n_pos, "layer": l, "depth": l / n, "baseline_logodds_harmful": float(base_h),
               "baseline_logodds_harmless": float(base_hl), "selected": 0}
        if pruned(l, n, prune_fraction, prune_rule):
            rows.append(dict(row, kept=0, why_filtered=f"in the last {prune_fraction:.0%} of layers ({prune_rule} "
                                                       f"rule)"))
            continue
        if float(d.norm()) == 0.0:
            rows.append(dict(row, kept=0, why_filtered="zero vector"))
            continue
        with Ablation().apply(model, d, l):
            abl = refusal_logodds(model, tokenizer, harmful_val, words, **kw).logodds.mean()
            kl = _kl(base_lp, _last_logprobs(model, tokenizer, harmless_val, template, system, batch_size))
        with Addition(1.0).apply(model, d, l):
            add = refusal_logodds(model, tokenizer, harmless_val, words, **kw).logodds.mean()
        why = []
        if not all(math.isfinite(x) for x in (abl, kl, add)):
            why.append("NaN score")
        if kl_threshold is not None and kl > kl_threshold:
            why.append(f"KL {kl:.3g} > {kl_threshold:g}")
        if induce_threshold is not None and add < induce_threshold:
            why.append(f"induce-refusal: actadd log-odds {add:.3g} < {induce_threshold:g}")
        rows.append(dict(row, ablation_logodds_harmful=float(abl), kl_harmless=float(kl),
                         actadd_logodds_harmless=float(add), kept=int(not why), why_filtered="; ".join(why)))
    kept = [r for r in rows if r["kept"]]
    if not kept:
        reasons = "; ".join(f"L{r['layer']}@{r['position']}: {r['why_filtered']}" for r in rows[:6])
        raise SteerscaleError(f"layer selection: every candidate was filtered ({reasons}); raise "
                              f"kl_threshold, turn off the induce-refusal filter or lower prune_fraction")
    best = min(kept, key=lambda r: r["ablation_logodds_harmful"])
    best["selected"] = 1
    pos = best["position"]
    config = {"kl_threshold": kl_threshold, "prune_fraction": prune_fraction, "prune_rule": prune_rule,
              "induce_threshold": induce_threshold, "candidate_layers": layers,
              "candidate_positions": list(range(-n_pos, 0)), "selected_position": pos,
              "n_harmful_val": len(harmful_val), "n_harmless_val": len(harmless_val),
              "rule": "lowest mean refusal log-odds on harmful validation prompts under ablation, among candidates "
                      "kept by the filters (ties: first in position-major, layer-minor order)"}
    return LayerSelection(best["layer"], v[pos + n_pos, best["layer"]].clone(), rows, config, pos)


def split_prompts(prompts, fractions=(0.5, 0.25), seed: int = 0):
    """(train, validation, test) by a seeded permutation: directions, layer selection and evaluation never share prompts."""
    prompts = as_prompts(prompts)
    a, b = fractions
    if not (0 < a < 1 and 0 < b < 1 and a + b < 1):
        raise SteerscaleError(f"split fractions {fractions}: expected train, validation > 0 with sum < 1")
    train, rest = split_items(prompts, a, seed)
    val, test = split_items(rest, b / (1 - a), seed + 1)
    if not train or not val or not test:
        raise SteerscaleError(f"{len(prompts)} prompts are too few for a train/validation/test split")
    return train, val, test


def run_ablation_study(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, harmful, harmless,
                       neutral: list[str] | None = None, vectors: SteeringVectors | None = None,
                       layer: int | None = None, candidate_layers: Sequence[int] | None = None,
                       multipliers: Sequence[float] = DEFAULT_MULTIPLIERS, recipe: AblationRecipe | None = None,
                       split_seed: int = 0, template: str = "chat", system: str | None = None, batch_size: int = 8,
                       n_bootstrap: int = 1000, seed: int = 0, info: ModelInfo | None = None, out_dir=None,
                       progress: bool = True, *,
                       interventions: Sequence[Intervention | str] | None = None,
                       ) -> tuple[InterventionResult, SteeringVectors]:
    """The whole recipe (`recipe`, default refusal_direction's: config.AblationRecipe): split prompts; filter
    the train and validation splits by baseline refusal; candidate directions (harmful - harmless on the train
    split at every post-instruction position, unless `vectors` is given); selection on the validation split
    (unless `layer` is given); comparison on the test split (`compare_interventions` with `multipliers` or
    `interventions`). The manifest's ``recipe`` block records the
    settings and every difference from refusal_direction (ablation_recipe.differences). Returns (result,
    the candidate vectors at the selected position, with meta["selected_layer"] and ["selected_position"])."""
    recipe, given = recipe or AblationRecipe(), vectors is not None
    check_recipe(recipe)
    info = info or model_info(model)
    (h_tr, h_val, h_te), (hl_tr, hl_val, hl_te) = split_prompts(harmful, seed=split_seed), \
        split_prompts(harmless, seed=split_seed)
    words = PhraseMatcher().opening_words()
    filtered = {}
    if recipe.filter_prompts == "baseline-refusal":
        h_tr, hl_tr, rec = filter_split(model, tokenizer, h_tr, hl_tr, "train", words, template, system, batch_size)
        filtered.update(rec)
        if layer is None:
            h_val, hl_val, rec = filter_split(model, tokenizer, h_val, hl_val, "val", words, template, system,
                                               batch_size)
            filtered.update(rec)
    n_pos, position = 1, -1
    if vectors is None:
        if recipe.candidate_positions == "post-instruction":
            n_pos = post_instruction_count(tokenizer, h_tr[0].text, template, system)
        cands = candidate_directions(model, tokenizer, h_tr, hl_tr, template=template, system=system,
                                     batch_size=batch_size, info=info, n_positions=n_pos)
    else:
        cands = vectors.vectors[None]
    kl = recipe.kl_threshold
    kl = None if kl is not None and kl < 0 else kl
    sel = None
    if layer is None:
        sel = select_layer(model, tokenizer, cands, h_val, hl_val, layers=candidate_layers, kl_threshold=kl,
                           prune_fraction=recipe.prune,
                           induce_threshold=recipe.induce_threshold if recipe.induce_filter == "on" else None,
                           template=template, system=system, batch_size=batch_size, progress=progress,
                           prune_rule=recipe.prune_rule)
        layer, position = sel.layer, sel.position
    if vectors is None:
        meta = _direction_meta(info, template, system, h_tr, hl_tr, position)
    else:
        meta = dict(vectors.meta)
    chosen = cands[n_pos + position]
    vectors = SteeringVectors(chosen.clone(), dict(meta, selected_layer=int(layer), selected_position=int(position),
                                                   candidate_positions=n_pos))
    res = compare_interventions(model, tokenizer, vectors, layer, h_te, hl_te, neutral, multipliers=multipliers,
                                interventions=interventions, template=template, system=system,
                                batch_size=batch_size, n_bootstrap=n_bootstrap, seed=seed, info=info, selection=sel,
                                progress=progress)
    res.manifest["split"] = {"seed": split_seed, "fractions": [0.5, 0.25, 0.25],
                             "harmful_train_ids": [p.id for p in h_tr], "harmful_val_ids": [p.id for p in h_val],
                             "harmless_train_ids": [p.id for p in hl_tr], "harmless_val_ids": [p.id for p in hl_val],
                             "filtered_by_baseline_refusal": filtered}
    res.manifest["recipe"] = dict(recipe_record(recipe, vectors_given=given, layer_given=sel is None,
                                                candidate_layers=None if candidate_layers is None
                                                else list(candidate_layers)),
                                  n_candidate_positions=n_pos, selected_position=int(position))
    if out_dir is not None:
        res.save(out_dir)
        vectors.save(Path(out_dir) / "directions.safetensors")
    return res, vectors


def direction_from_file(path, layer: int | None = None) -> tuple[torch.Tensor, int]:
    """The direction at `layer` (default: meta["selected_layer"]) of a vectors file; for ablate/orthogonalize."""
    vecs = SteeringVectors.load(path)
    if layer is None:
        layer = vecs.meta.get("selected_layer")
        if layer is None:
            raise SteerscaleError(f"{path}: no selected_layer in its metadata; give the layer (--direction-layer)")
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise SteerscaleError(f"{path}: selected_layer {short(layer, 40)}: expected a layer index (an integer); "
                              f"or give the layer with --direction-layer")
    if not 0 <= layer < vecs.n_layers:
        raise SteerscaleError(f"{path}: layer {layer} out of range, the file covers layers 0..{vecs.n_layers - 1}")
    d = vecs.vectors[layer]
    if float(d.norm()) == 0.0:
        raise SteerscaleError(f"{path}: the vector at layer {layer} is zero")
    return d.clone(), layer


__all__ = ["candidate_directions", "refusal_directions", "select_layer", "run_ablation_study", "split_prompts",
           "direction_from_file", "LayerSelection"]
