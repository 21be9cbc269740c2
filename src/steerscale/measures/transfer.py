"""Transfer across models: vectors made on one model steering another with the same hidden size.

The layer correspondence is the one relative-depth map, `vectors.map_layers` (re-exported here with
`transfer_vectors` and `TRANSFER_MAPS`): with "relative", layer i of an n-layer model corresponds to
layer floor(i * (m - 1) / (n - 1) + 0.5) of an m-layer model (first to first, last to last; a one-layer
model's only layer is its last); with "same", layer L to layer L (equal depth required).
`transfer_vectors` lays a whole vector file out for the target (target layer t gets the source layer
``map_layers(n_source, n_target)[t]``); `transfer_effect` measures how much of the refusal log-odds
effect survives when source layers are steered on the target at ``map_layers(n_target, n_source)[l]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SteerscaleError
from ..core.models import get_layers
from ..core.steering import steer
from ..core.vectors import as_vectors, map_layers
from .refusal import PhraseMatcher, refusal_logodds

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from ..core.vectors import SteeringVectors


def transfer_effect(source, target, vectors: SteeringVectors | torch.Tensor, layers: list[int], multiplier: float,
                    prompts: list[str], how: str = "relative", template: str = "chat", system: str | None = None,
                    batch_size: int = 8, phrases: PhraseMatcher | None = None) -> dict:
    """How much of the log-odds effect survives when vectors made on `source` steer `target`.

    `source`/`target`: (model, tokenizer) pairs with the same hidden size. `layers`: source layers
    steered; on the target the layers at the same relative depth (how="relative") or the same indices
    (how="same") are steered, with the source layers' vectors. Effect = mean refusal log-odds (steered)
    - mean (unsteered) over `prompts`; ratio = target effect / source effect.
    """
    (sm, st), (tm, tt) = source, target
    ns, nt = len(get_layers(sm)), len(get_layers(tm))
    hs, ht = int(sm.config.get_text_config().hidden_size), int(tm.config.get_text_config().hidden_size)
    if hs != ht:
        raise SteerscaleError(f"cannot transfer: source hidden size {hs}, target hidden size {ht}")
    v = as_vectors(vectors).vectors
    if v.shape != (ns, hs):
        raise SteerscaleError(f"vectors of shape {tuple(v.shape)} do not fit the source model ({ns} x {hs})")
    map_layers(ns, nt, how)  # validates `how` (and equal depth for "same")
    for l in layers:
        if not 0 <= l < ns:
            raise SteerscaleError(f"layer {l} out of range: the source model has layers 0..{ns - 1}")
    to_target = map_layers(nt, ns, how)  # source layer l -> the target layer at its depth
    pairs = {l: to_target[l] for l in layers}
    tgt_layers = sorted(set(pairs.values()))
    if len(tgt_layers) != len(pairs):
        raise SteerscaleError(f"source layers {list(layers)} map onto fewer target layers ({tgt_layers})")
    tvec = {t: v[l] for l, t in pairs.items()}
    words = (phrases or PhraseMatcher()).opening_words()
    kw = dict(template=template, system=system, batch_size=batch_size)

    def effect(model: PreTrainedModel, tok, vecs, ls):
        base = refusal_logodds(model, tok, prompts, words, **kw).logodds.mean()
        with steer(model, vecs, ls, multiplier) as s:
            stv = refusal_logodds(model, tok, prompts, words, steering=s, **kw).logodds.mean()
        return float(stv - base)

    es = effect(sm, st, v, list(layers))
    et = effect(tm, tt, tvec, tgt_layers)
    return {"source_layers": list(layers), "target_layers": tgt_layers, "layer_map": how, "multiplier": multiplier,
            "source_n_layers": ns, "target_n_layers": nt, "effect_source": es, "effect_target": et,
            "ratio": et / es if es != 0 else float("nan"), "n_prompts": len(prompts)}
