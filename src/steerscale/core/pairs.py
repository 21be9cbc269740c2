"""Steering vectors from (positive, negative) text pairs, as steering-vectors trains them, and the
``train_vectors`` entry point that accepts either A/B items or such pairs.

Contract of pair training (``train_from_pairs``):

* each text is used as given: no prompt template, no system prompt; the tokenizer adds its special tokens
  (e.g. BOS) as it does by default, exactly as steering-vectors' ``train_steering_vector`` tokenises;
* the residual is read at each text's **last token** (steering-vectors' default read position,
  ``read_token_index=-1``), at the output of every decoder layer L (steerscale's read place);
* vector[L] = mean over pairs of (residual of the positive text − residual of the negative text);
* metadata: ``trained_from = "pairs"``, ``n_pairs``, a hash of the pairs, ``read_at``, and the model's
  identity (name, spec, type, layers, hidden size, weights fingerprint).

No letter figures (letter counts, letter-identity direction): a pair has no answer letters, each text is its
own completion, so there is no letter imbalance to measure or to balance; ``letter_figures`` in the metadata
says so. Use A/B items (``load_dataset``) to get the letter-balanced estimator.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import TYPE_CHECKING

import torch

from .batching import batches, model_device, pad_id_of, pad_left
from ..errors import SteerscaleError
from .models import _model_type, get_layers, model_info
from .prompts import _encode
from .steering import capture
from .vectors import NORMALIZATIONS, SteeringVectors
from .vectors import train_vectors as train_ab_vectors

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from .types import Tokenizer

READ_AT = "output of decoder layer L, last token of each text (steering-vectors' default read position)"
NO_LETTER_FIGURES = ("not applicable: trained from text pairs, which have no answer letters (no letter "
                     "imbalance to measure or balance)")


def is_pairs(items) -> bool:
    """True when `items` is a non-empty sequence of (positive, negative) pairs (2-tuples or 2-lists)."""
    try:
        return len(items) > 0 and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in items)
    except TypeError:
        return False


def _check_pairs(pairs) -> list[tuple[str, str]]:
    out = []
    for i, p in enumerate(pairs):
        if not (isinstance(p, (tuple, list)) and len(p) == 2):
            raise SteerscaleError(f"pair {i}: expected a (positive, negative) pair of strings, got "
                                  f"{type(p).__name__}")
        pos, neg = p
        for which, t in (("positive", pos), ("negative", neg)):
            if not isinstance(t, str) or not t.strip():
                raise SteerscaleError(f"pair {i}: the {which} text is {t!r}; expected a non-empty string")
        out.append((pos, neg))
    return out


def pairs_hash(pairs) -> str:
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()[:16]


@torch.no_grad()
def _last_token_residuals(model: PreTrainedModel, tokenizer: Tokenizer, texts: list[str],
                          batch_size: int) -> torch.Tensor:
    """[n_texts, n_layers, hidden] float32: the output of every decoder layer at each text's last token."""
    n = len(get_layers(model))
    seqs = [_encode(tokenizer, t) for t in texts]
    device, pad = model_device(model), pad_id_of(tokenizer)
    out = []
    for idx in batches(len(seqs), batch_size):
        batch = pad_left([seqs[i] for i in idx], pad).to(device)
        with capture(model, range(n), position=-1) as store:  # left padding: -1 is every row's last token
            model(**batch.model_inputs(), use_cache=False)
        out.append(torch.stack([store[l][0].float().cpu() for l in range(n)], dim=1))
    return torch.cat(out)


def train_from_pairs(model: PreTrainedModel, tokenizer: Tokenizer, pairs, normalize: str = "none", batch_size: int = 8,
                     info=None) -> SteeringVectors:
    """Vectors from (positive, negative) text pairs; see the module docstring for the contract."""
    if normalize not in NORMALIZATIONS:
        raise SteerscaleError(f"normalization {normalize!r}: expected one of {', '.join(NORMALIZATIONS)}")
    if batch_size < 1:
        raise SteerscaleError(f"batch_size {batch_size}: expected a positive integer")
    pairs = _check_pairs(pairs)
    info = info or model_info(model)
    texts = [t for p in pairs for t in p]
    acts = _last_token_residuals(model, tokenizer, texts, batch_size)  # [2P, L, H]
    pos, neg = acts[0::2].double(), acts[1::2].double()
    mean_norm = acts.double().norm(dim=-1).mean(0)  # [L]
    meta = {"model": info.name, "model_spec": info.spec, "model_type": info.model_type, "n_layers": info.n_layers,
            "hidden_size": info.hidden_size, "weights_fingerprint": info.weights_fingerprint,
            "trained_from": "pairs", "n_pairs": len(pairs), "pairs_hash": pairs_hash(pairs), "template": "none",
            "read_at": READ_AT, "letter_figures": NO_LETTER_FIGURES, "normalization": "none",
            "mean_residual_norm": [round(float(x), 6) for x in mean_norm]}
    vecs = SteeringVectors((pos - neg).mean(0).float(), meta)
    return vecs.normalized(normalize, mean_norm.float())


@functools.wraps(train_ab_vectors)
def train_vectors(model: PreTrainedModel, tokenizer: Tokenizer, items, *args, **kwargs) -> SteeringVectors:
    if is_pairs(items):
        given = [k for k in ("template", "system", "cache_dir", "keep_activations") if kwargs.get(k)]
        if args or given:
            what = ", ".join(given) or "positional options"
            raise SteerscaleError(f"train_vectors on text pairs: {what} not used (pairs are read as given, at each "
                                  f"text's last token); pass normalize=, batch_size=, info= by name only")
        return train_from_pairs(model, tokenizer, items, normalize=kwargs.get("normalize", "none"),
                                batch_size=kwargs.get("batch_size", 8), info=kwargs.get("info"))
    if items and isinstance(items, (list, tuple)) and isinstance(items[0], (tuple, list, str)):
        raise SteerscaleError("train_vectors: expected A/B items (load_dataset) or (positive, negative) pairs of "
                              "strings")
    vecs = train_ab_vectors(model, tokenizer, items, *args, **kwargs)
    info = kwargs.get("info")
    vecs.meta.setdefault("model_type", info.model_type if info else _model_type(model))  # export_gguf's model_hint
    return vecs


train_vectors.__doc__ = (train_ab_vectors.__doc__ or "") + (
    "\n\n    `items` may also be (positive, negative) string pairs: steering-vectors' habit, read at each text's "
    "last token\n    (steerscale.pairs.train_from_pairs documents the contract; metadata trained_from = 'pairs').")
