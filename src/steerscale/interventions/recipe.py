"""The ablation recipe: refusal_direction's rules (Arditi et al. 2024, andyrdt/refusal_direction) and the
record of every way a run differs from them.

Source of each rule (andyrdt/refusal_direction at the commit fetched for this module):

* candidate positions: ``generate_directions.py`` takes the mean difference at every position of
  ``eoi_toks``, the tokens of the chat template after the instruction (``template.split("{instruction}")[-1]``
  tokenised without special tokens), i.e. positions -len(eoi_toks) .. -1 of the prompt;
* prompt filtering: ``run_pipeline.filter_data`` keeps train and validation harmful prompts whose baseline
  refusal score is > 0 and harmless ones whose score is < 0 (``filter_train = filter_val = True``);
* pruning: ``select_direction.filter_fn`` drops ``layer >= int(n_layer * (1.0 - prune_layer_percentage))``
  with 0.2, where their ``layer`` indexes the *input* of block ``layer`` (``resid_pre``): steerscale's
  layer L (output of decoder layer L) is their L + 1;
* filters: KL(baseline || ablated) > 0.1 on harmless validation prompts, or a steering (induce-refusal)
  score < 0.0 when the candidate is added x1 at its layer to harmless prompts, or a NaN score; the
  lowest mean refusal score under ablation on harmful validation prompts wins (ties: first in
  position-major, layer-minor order).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from ..config import AblationRecipe
from ..core.prompts import format_prompt
from ..errors import SteerscaleError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

REFERENCE = "refusal_direction (Arditi et al. 2024, github.com/andyrdt/refusal_direction)"

# Differences that no option removes: steerscale's conventions, recorded in every run.
FIXED_DIFFERENCES = [
    "candidates are read at the output of decoder layer L (refusal_direction: the input of block L, i.e. "
    "steerscale's L-1), so their embedding-layer candidate (their layer 0) has no steerscale counterpart",
    "the refusal score is steerscale's refusal log-odds at the first response token over the refusal-opening "
    "tokens of steerscale.measures.refusal (refusal_direction: a per-model list of refusal tokens, e.g. 'I' "
    "and 'As', with epsilon 1e-8)",
    "prompts are split train/validation/test 50/25/25 by a seeded permutation of the given prompts "
    "(refusal_direction: 128 train and 32 validation prompts sampled with random.seed(42) from its own splits, "
    "tested on JailbreakBench)",
    "the comparison measures refusal log-odds and neutral-text cross-entropy (refusal_direction: generations "
    "judged by substring matching and LlamaGuard 2, and CE on the Pile/Alpaca)",
]


def pruned(layer: int, n_layers: int, fraction: float | None, rule: str = "refusal_direction") -> bool:
    """Whether candidate `layer` (steerscale's index: output of decoder layer `layer`) is pruned.

    ``refusal_direction``: their ``filter_fn`` on their index (``layer + 1``):
    ``layer + 1 >= int(n_layers * (1.0 - fraction))``; ``output-index``: the same formula on steerscale's
    index (one layer fewer pruned). ``fraction=None``: nothing pruned.
    """
    if fraction is None:
        return False
    if rule not in ("refusal_direction", "output-index"):
        raise SteerscaleError(f"prune rule {rule!r}: expected refusal_direction or output-index")
    their_index = layer + 1 if rule == "refusal_direction" else layer
    return their_index >= int(n_layers * (1.0 - fraction))


def post_instruction_count(tokenizer: PreTrainedTokenizerBase, text: str, template: str = "chat", system: str | None = None) -> int:
    """How many tokens the prompt format writes after the instruction (refusal_direction's ``eoi_toks``):
    the text after the instruction in the formatted prompt, tokenised without special tokens (at least 1)."""
    prompt = format_prompt(tokenizer, text, template, system)
    body = text.strip()
    at = prompt.rfind(body) if body else -1
    if at < 0:
        raise SteerscaleError(f"template {template!r}: the formatted prompt does not contain the instruction "
                              f"{body[:40]!r}; use --candidate-positions last")
    suffix = prompt[at + len(body):]
    return max(1, len(tokenizer(suffix, add_special_tokens=False).input_ids)) if suffix else 1


def check_recipe(recipe: AblationRecipe) -> None:
    """One-line SteerscaleError for a recipe value out of range (the CLI's choices catch the rest)."""
    if not (isinstance(recipe.prune, (int, float)) and 0 <= recipe.prune < 1):
        raise SteerscaleError(f"--prune {recipe.prune}: expected a fraction in [0, 1)")
    for name, allowed in (("candidate_positions", ("post-instruction", "last")),
                          ("filter_prompts", ("baseline-refusal", "none")), ("induce_filter", ("on", "off")),
                          ("prune_rule", ("refusal_direction", "output-index"))):
        if getattr(recipe, name) not in allowed:
            raise SteerscaleError(f"ablation recipe {name} {getattr(recipe, name)!r}: expected one of "
                                  f"{', '.join(allowed)}")


def differences(recipe: AblationRecipe, vectors_given: bool = False, layer_given: bool = False,
                candidate_layers: list[int] | None = None) -> list[str]:
    """Every way a run with `recipe` differs from refusal_direction's recipe, one sentence each."""
    ref = AblationRecipe()
    out = []
    if vectors_given:
        out.append("candidates come from a given vectors file (one per layer), not harmful-minus-harmless means "
                   "at the post-instruction positions")
    elif recipe.candidate_positions != ref.candidate_positions:
        out.append("only the last prompt token is a candidate position (refusal_direction: every "
                   "post-instruction token)")
    if recipe.filter_prompts != ref.filter_prompts:
        out.append("train/validation prompts are not filtered by baseline refusal (refusal_direction keeps "
                   "harmful prompts with score > 0 and harmless ones with score < 0)")
    if layer_given:
        out.append("the layer was given: no selection on validation prompts (the last prompt position is used)")
    else:
        if recipe.kl_threshold != ref.kl_threshold:
            out.append(f"KL filter bound {recipe.kl_threshold} (refusal_direction: {ref.kl_threshold})")
        if recipe.induce_filter != ref.induce_filter:
            out.append("the induce-refusal filter is off (refusal_direction: steering score < 0.0 is dropped)")
        elif recipe.induce_threshold != ref.induce_threshold:
            out.append(f"induce-refusal bound {recipe.induce_threshold:g} (refusal_direction: 0.0)")
        if recipe.prune != ref.prune:
            out.append(f"the last {recipe.prune:g} of layers pruned (refusal_direction: 0.2)")
        if recipe.prune_rule != ref.prune_rule:
            out.append("pruning formula applied to steerscale's output index, which keeps one layer "
                       "refusal_direction prunes")
        if candidate_layers is not None:
            out.append(f"candidate layers restricted to {candidate_layers} (refusal_direction: every layer)")
    return out + FIXED_DIFFERENCES


def recipe_record(recipe: AblationRecipe, **given) -> dict:
    """The manifest's ``recipe`` block: settings, whether they are refusal_direction's, every difference."""
    diffs = differences(recipe, **given)
    optional = [d for d in diffs if d not in FIXED_DIFFERENCES]
    return {"reference": REFERENCE, "settings": asdict(recipe),
            "is_reference_recipe": not optional,
            "differences_from_reference": diffs}


def filter_by_refusal(harmful_scores, harmless_scores) -> tuple[list[int], list[int]]:
    """Indices kept by refusal_direction's prompt filter: harmful with score > 0, harmless with score < 0."""
    return ([i for i, s in enumerate(harmful_scores) if s > 0], [i for i, s in enumerate(harmless_scores) if s < 0])


def filter_split(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, harmful, harmless, label: str,
                 words: list[str], template: str, system: str | None, batch_size: int):
    """refusal_direction's prompt filter on one split; returns (harmful kept, harmless kept, record)."""
    from ..measures.refusal import refusal_logodds

    kw = dict(template=template, system=system, batch_size=batch_size)
    sh = refusal_logodds(model, tokenizer, [p.text for p in harmful], words, **kw).logodds
    shl = refusal_logodds(model, tokenizer, [p.text for p in harmless], words, **kw).logodds
    ih, ihl = filter_by_refusal(sh, shl)
    if not ih or not ihl:
        raise SteerscaleError(
            f"prompt filter by baseline refusal: {len(ih)} of {len(harmful)} harmful {label} prompts refused "
            f"(log-odds > 0) and {len(ihl)} of {len(harmless)} harmless ones not refused (< 0); nothing left "
            f"to learn from: give more prompts or --filter-prompts none")
    rec = {f"harmful_{label}_dropped": [p.id for i, p in enumerate(harmful) if i not in set(ih)],
           f"harmless_{label}_dropped": [p.id for i, p in enumerate(harmless) if i not in set(ihl)]}
    return [harmful[i] for i in ih], [harmless[i] for i in ihl], rec


__all__ = ["pruned", "post_instruction_count", "differences", "recipe_record", "filter_by_refusal", "filter_split",
           "check_recipe", "FIXED_DIFFERENCES", "REFERENCE"]
