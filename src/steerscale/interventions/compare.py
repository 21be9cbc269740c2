"""The comparison of interventions on the same test prompts, and the tables it writes.

``compare_interventions``: each condition (an ``Intervention`` from interventions/base.py: by default baseline,
directional ablation and activation addition per multiplier) is applied as a context manager while the same
measures run: refusal log-odds at the first response token on harmful prompts (refusal) and harmless prompts
(over-refusal) (steerscale.measures.refusal), token-weighted cross-entropy on neutral text (capability cost,
steerscale.measures.capability); means with seeded bootstrap 95% intervals (steerscale.stats) and paired
intervals of the change from baseline. ``InterventionResult`` holds the rows and writes them (results.save_tables).
The direction and its layer come from interventions/ablation.py (candidates and selection) or from the caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .base import DEFAULT_MULTIPLIERS, Intervention, definitions_of, resolve_conditions
from ..core.data import Prompt
from ..core.models import model_info
from ..core.vectors import SteeringVectors
from ..errors import SteerscaleError
from ..io.results import manifest as make_manifest
from ..io.results import save_tables
from ..measures.capability import neutral_cross_entropy
from ..measures.refusal import PhraseMatcher, refusal_logodds
from ..stats import mean_ci

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .ablation import LayerSelection
    from ..core.models import ModelInfo


def as_prompts(prompts) -> list[Prompt]:
    """Prompt records as given; plain strings become Prompt(text, id=their index, category="")."""
    return [p if isinstance(p, Prompt) else Prompt(str(p), str(i), "") for i, p in enumerate(prompts)]


SELECTION_COLUMNS = ["position", "layer", "depth", "ablation_logodds_harmful", "kl_harmless",
                     "actadd_logodds_harmless", "baseline_logodds_harmful", "baseline_logodds_harmless", "kept",
                     "why_filtered", "selected"]



ITEM_COLUMNS = ["model", "condition", "layer", "multiplier", "kind", "prompt_id", "category", "logodds", "p_open"]
CE_COLUMNS = ["model", "condition", "layer", "multiplier", "text_id", "n_tokens", "nll_sum", "ce"]
AGG_COLUMNS = ["model", "n_layers", "condition", "layer", "depth", "multiplier",
               "n_harmful", "logodds_harmful", "logodds_harmful_low", "logodds_harmful_high",
               "delta_logodds_harmful", "delta_logodds_harmful_low", "delta_logodds_harmful_high",
               "n_harmless", "logodds_harmless", "logodds_harmless_low", "logodds_harmless_high",
               "delta_logodds_harmless", "delta_logodds_harmless_low", "delta_logodds_harmless_high",
               "p_open_harmful", "p_open_harmless", "n_neutral",
               "ce", "ce_low", "ce_high", "ce_delta", "ce_delta_low", "ce_delta_high"]


@dataclass
class InterventionResult:
    items: list[dict]
    ce: list[dict]
    aggregate: list[dict]
    selection: list[dict]
    manifest: dict

    def save(self, out_dir) -> Path:
        """items.csv, ce.csv, aggregate.csv/.json, selection.csv (when a layer was selected), then manifest.json
        last (results.save_tables)."""
        tables = [("items.csv", self.items, ITEM_COLUMNS), ("ce.csv", self.ce, CE_COLUMNS),
                  ("aggregate.csv", self.aggregate, AGG_COLUMNS), ("aggregate.json", self.aggregate, None)]
        if self.selection:
            tables.append(("selection.csv", self.selection, SELECTION_COLUMNS))
        return save_tables(out_dir, tables, self.manifest)


def compare_interventions(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                          vectors: SteeringVectors | torch.Tensor, layer: int, harmful, harmless,
                          neutral: list[str] | None = None, multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
                          template: str = "chat", system: str | None = None, batch_size: int = 8,
                          n_bootstrap: int = 1000, seed: int = 0, ce_max_tokens: int = 256,
                          phrases: PhraseMatcher | None = None, info: ModelInfo | None = None,
                          selection: LayerSelection | None = None, out_dir=None, progress: bool = True, *,
                          interventions: Sequence[Intervention | str] | None = None) -> InterventionResult:
    """Each intervention (default: baseline, ablation, actadd per non-zero multiplier) measured on the same
    prompts, in the given order; see the module doc for the measures.

    `vectors`: SteeringVectors (or [n_layers, hidden] tensor); the direction is ``vectors[layer]``, handed to
    every intervention's ``apply(model, direction, layer)`` (ablation uses its unit vector at every layer;
    actadd adds ``multiplier x vectors[layer]`` at `layer`).
    `interventions`: `Intervention` objects or registry names (interventions/base.py ``INTERVENTIONS``); must
    include ``baseline`` (deltas are taken against it); give it or `multipliers` (default -1, 1), not both;
    the manifest then records the conditions (``config.interventions``) and the additions' multipliers.
    `harmful`/`harmless`: test prompts (Prompt records or strings), never the ones used for selection.
    """
    info = info or model_info(model)
    v = vectors.vectors if isinstance(vectors, SteeringVectors) else torch.as_tensor(vectors)
    if tuple(v.shape) != (info.n_layers, info.hidden_size):
        raise SteerscaleError(f"vectors of shape {tuple(v.shape)}: this model needs [{info.n_layers}, {info.hidden_size}]")
    if not 0 <= layer < info.n_layers:
        raise SteerscaleError(f"layer {layer} out of range: this model has layers 0..{info.n_layers - 1}")
    conditions, multipliers = resolve_conditions(multipliers, interventions)
    harmful, harmless = as_prompts(harmful), as_prompts(harmless)
    if not harmful or not harmless:
        raise SteerscaleError("the comparison needs harmful and harmless test prompts")
    words = (phrases or PhraseMatcher()).opening_words()
    kw = dict(template=template, system=system, batch_size=batch_size)
    neutral = list(neutral or [])
    t0 = time.time()

    def measure():
        h = refusal_logodds(model, tokenizer, [p.text for p in harmful], words, **kw)
        hl = refusal_logodds(model, tokenizer, [p.text for p in harmless], words, **kw)
        ce = neutral_cross_entropy(model, tokenizer, neutral, batch_size, ce_max_tokens) if neutral else None
        return h, hl, ce

    results = {}
    for cond in tqdm(conditions, desc="interventions", disable=not progress):
        with cond.apply(model, v[layer], layer):
            results[cond.condition] = measure()
    base_h, base_hl, base_ce = results["baseline"]
    items, ce_rows, agg = [], [], []
    for cond in conditions:
        name, m = cond.condition, float(cond.multiplier)
        h, hl, ce = results[name]
        lay = layer if cond.records_layer else None
        common = {"model": info.name, "condition": name, "layer": lay, "multiplier": m}
        for kind, prompts, lo in (("harmful", harmful, h), ("harmless", harmless, hl)):
            for i, p in enumerate(prompts):
                items.append(dict(common, kind=kind, prompt_id=p.id, category=p.category,
                                  logodds=float(lo.logodds[i]), p_open=float(lo.p_open[i])))
        r = dict(common, n_layers=info.n_layers, depth=None if lay is None else lay / info.n_layers)
        for kind, lo, blo in (("harmful", h, base_h), ("harmless", hl, base_hl)):
            r[f"n_{kind}"] = len(lo.logodds)
            r[f"logodds_{kind}"], r[f"logodds_{kind}_low"], r[f"logodds_{kind}_high"] = mean_ci(lo.logodds, n_bootstrap, seed)
            (r[f"delta_logodds_{kind}"], r[f"delta_logodds_{kind}_low"],
             r[f"delta_logodds_{kind}_high"]) = mean_ci(lo.logodds - blo.logodds, n_bootstrap, seed)
            r[f"p_open_{kind}"] = float(np.mean(lo.p_open))
        r["n_neutral"] = len(neutral)
        if ce is not None:
            for i in range(len(ce.nll_sum)):
                ce_rows.append(dict(common, text_id=i, n_tokens=int(ce.n_tokens[i]), nll_sum=float(ce.nll_sum[i]),
                                    ce=float(ce.nll_sum[i] / ce.n_tokens[i])))
            r["ce"], r["ce_low"], r["ce_high"] = ce.ci(n_bootstrap, seed)
            r["ce_delta"], r["ce_delta_low"], r["ce_delta_high"] = ce.ci(n_bootstrap, seed, base=base_ce)
        agg.append(r)
    config = {"layer": layer, "multipliers": [float(m) for m in multipliers], "template": template, "system": system,
              "batch_size": batch_size, "n_bootstrap": n_bootstrap, "seed": seed, "ce_max_tokens": ce_max_tokens}
    config.update({} if interventions is None else {"interventions": [c.condition for c in conditions]})
    manifest = make_manifest(
        "interventions", config, info, t0,
        vectors=vectors.meta if isinstance(vectors, SteeringVectors) else {},
        direction_norm=float(v[layer].norm()),
        selection=None if selection is None else {"layer": selection.layer, **selection.config},
        prompts={"harmful_ids": [p.id for p in harmful], "harmless_ids": [p.id for p in harmless],
                 "n_neutral": len(neutral)},
        refusal_opening_words=words,
        definitions={
            **definitions_of(conditions),
            "logodds": "log p(R) - log p(not R) for the first response token, R = refusal-opening tokens "
                       "(steerscale.measures.refusal.refusal_logodds); harmful = refusal, harmless = over-refusal",
            "ce": "token-weighted mean next-token cross-entropy (nats) on neutral text, raw, every position "
                  "intervened; ce_delta = condition - baseline, paired bootstrap over paragraphs",
            "intervals": "seeded percentile bootstrap 95% over prompts; delta_* intervals are paired by prompt",
        },
        timings_s={"total": round(time.time() - t0, 3)},
    )
    res = InterventionResult(items, ce_rows, agg, selection.rows if selection else [], manifest)
    if out_dir is not None:
        res.save(out_dir)
    return res


__all__ = ["compare_interventions", "InterventionResult", "as_prompts", "ITEM_COLUMNS", "CE_COLUMNS", "AGG_COLUMNS",
           "SELECTION_COLUMNS"]
