"""A run's model-side checks, made before any forward pass: prompts fit the model's context, the model has decoder
layers, vectors were made on this model (fingerprints first, then names), imported vectors cover the layers asked,
and steered points that saturated.

Each failure is a one-line SteerscaleError naming the item, file or flag and what was expected.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import SteerscaleError
from ..io.guards import short

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from transformers import PreTrainedModel

    from ..reproduce.config import ModelSpec, ReproduceConfig
    from .models import ModelInfo
    from .types import Tokenizer
    from .vectors import SteeringVectors

log = logging.getLogger(__name__)


def model_context(model: PreTrainedModel) -> int | None:
    """The longest sequence the model's positions allow (max_position_embeddings / n_positions), or None."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for k in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        v = getattr(cfg, k, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def check_context(model: PreTrainedModel, tokenizer: Tokenizer, texts: Sequence[tuple[object, str]],
                  template: str, system: str | None, extra: int = 1, what: str = "item",
                  max_tokens: int | None = None, raw: bool = False,
                  extra_what: str = "to generate") -> None:
    """Refuse a prompt whose tokens plus `extra` (the answer token, or the tokens to generate) exceed the
    model's context. `texts`: (label, text) pairs; `raw`: tokenise the text as is (no prompt template);
    `max_tokens`: texts are cut to this many tokens by the caller."""
    ctx = model_context(model)
    if ctx is None:
        return
    from .prompts import _encode, format_prompt

    for label, text in texts:
        n = len(_encode(tokenizer, text if raw else format_prompt(tokenizer, text, template, system)))
        if max_tokens is not None:
            n = min(n, max_tokens)
        if n + extra > ctx:
            more = f" + {extra} {extra_what}" if extra > 1 else ""
            where = f"{what} {label}" if str(label) != "" else what
            raise SteerscaleError(f"{where}: {n} prompt tokens{more} exceed this model's context of {ctx} "
                                  f"tokens; shorten it or use a model with a longer context")


def check_reproduce_fits(cfg: ReproduceConfig, m: ModelSpec, model: PreTrainedModel, tok: Tokenizer, ab_data,
                         oe_data) -> None:
    """Every A/B item, and every prompt the open-ended sweep scores or generates for (plus max_new_tokens), must
    fit the model's context: the same checks as the CLI's sweep and openended (check_context above)."""
    tmpl, system = m.sweep["template"], m.sweep["system"]
    for name, items in zip(("train", "test"), ab_data or ()):
        check_context(model, tok, [(it.id, it.question) for it in items], tmpl, system, extra=2,
                      what=f"{cfg.data[name]}: item", extra_what="for '(' and the answer letter")
    if oe_data is not None:
        o = cfg.openended
        for source, prompts in ((o["harmful"], oe_data[0]), (o["harmless"], oe_data[1])):
            check_context(model, tok, [(p.id, p.text) for p in prompts[: o["n_logodds"]]], tmpl, system, extra=1,
                          what=f"{source}: prompt")
            check_context(model, tok, [(p.id, p.text) for p in prompts[: o["n_generate"]]], tmpl, system,
                          extra=o["max_new_tokens"], what=f"{source}: prompt")


def check_model_layers(info: ModelInfo) -> None:
    if info.n_layers < 1:
        raise SteerscaleError(f"model {info.spec}: has {info.n_layers} decoder layers; nothing to steer "
                              f"(check num_hidden_layers in its config.json)")


def check_foreign_vectors(vectors: SteeringVectors | torch.Tensor, info: ModelInfo, allow: bool,
                          flag: str = "--allow-foreign-vectors") -> None:
    """Refuse vectors made on another model (same shape, or check_model would already have refused them),
    unless `allow`. Fingerprints decide first: vectors whose ``weights_fingerprint`` equals the model's were made
    on these weights, whatever name either side records; different fingerprints are another model (or dtype).
    Names are compared only when either side has no fingerprint."""
    from .vectors import as_vectors

    meta = as_vectors(vectors).meta
    made_on = meta.get("model")
    theirs, ours = meta.get("weights_fingerprint"), getattr(info, "weights_fingerprint", "")
    detail = ""
    if theirs and ours:
        if theirs == ours:
            return
        made_on = made_on or "?"
        detail = (f"; their weights fingerprint is {str(theirs)[:40]}, this model's {ours} (other weights, or these "
                  f"weights in another dtype)")
    elif not made_on or made_on == info.name:
        return
    where = f"{vectors.path}: " if getattr(vectors, "path", None) else ""
    if allow:
        log.warning("%svectors were made on %r; steering %r with them (%s)", where, made_on, info.name, flag)
        return
    raise SteerscaleError(f"{where}vectors were made on model {short(made_on, 80)}, this is {short(info.name, 80)} "
                          f"(same shape){detail}; pass {flag} to steer it with them anyway")


def check_layers_present(vectors: SteeringVectors | torch.Tensor, layers: Sequence[int] | None,
                         flag: str = "--layers") -> None:
    """Imported vectors (interop) are zero at layers their file does not cover (``meta["layers_present"]``):
    steering there would report a "delta exactly 0" as a measured effect, so such layers are refused."""
    from .vectors import as_vectors

    present = as_vectors(vectors).meta.get("layers_present")
    if present is None:
        return
    want = range(vectors.n_layers) if layers is None else layers
    missing = sorted({int(l) for l in want} - {int(l) for l in present})
    if missing:
        where = f"{vectors.path}: " if getattr(vectors, "path", None) else ""
        shown = ", ".join(map(str, missing[:6])) + (" ..." if len(missing) > 6 else "")
        raise SteerscaleError(f"{where}imported vectors cover layers {short(sorted(present), 80)} only; layer(s) "
                              f"{shown} would steer with a zero vector and measure nothing; pass {flag} within "
                              f"the covered layers")


def saturated_points(rows: list[dict]) -> list[tuple]:
    """(layer, multiplier, score) of steered points where every item has exactly the same score while the
    unsteered items differ: the steering swamped the input (a multiplier far too large)."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["layer"], r["multiplier"]), []).append(float(r["score"]))
    out = []
    base_varies = any(len(set(v)) > 1 for (l, m), v in groups.items() if m == 0.0)
    for (l, m), v in sorted(groups.items()):
        if m != 0.0 and len(v) > 1 and len(set(v)) == 1 and base_varies:
            out.append((l, m, v[0]))
    return out
