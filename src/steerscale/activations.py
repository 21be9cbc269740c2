"""Batched forward passes and the residual stream at the answer-letter token, for every layer.

Read place: output of decoder layer L (after the MLP residual add), at the
answer-letter token of ``(A`` / ``(B``, once with the matching and once with the
non-matching letter. Mean differences are accumulated in float64 as batches
stream past, so memory does not grow with the number of items; per-item
activations are kept only when asked (``keep=True``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .data import Encoded, dataset_hash
from .errors import SteerscaleError
from .models import get_layers
from .steering import capture


@dataclass
class Batch:
    """A left-padded batch. ``instruction_end`` is in padded coordinates."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    pad: torch.Tensor
    instruction_end: torch.Tensor

    def to(self, device):
        return Batch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.position_ids, self.pad, self.instruction_end)))

    def model_inputs(self) -> dict:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "position_ids": self.position_ids}


def pad_left(seqs: list[list[int]], pad_id: int, instruction_end: list[int] | None = None) -> Batch:
    """Left-pad token lists; position ids count real tokens only, so padding never shifts positions."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, T - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, T - len(s) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    pad = torch.tensor([T - len(s) for s in seqs], dtype=torch.long)
    ie = torch.tensor(instruction_end if instruction_end is not None else [0] * len(seqs), dtype=torch.long) + pad
    return Batch(ids, mask, pos, pad, ie)


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def pad_id_of(tokenizer) -> int:
    pid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pid if pid is not None else 0)


def batches(n: int, size: int):
    for i in range(0, n, size):
        yield range(i, min(i + size, n))


@dataclass
class ActivationStats:
    """Per-layer mean difference (matching - not matching) and mean residual norm at the answer token."""

    mean_diff: torch.Tensor  # [n_layers, hidden], float32
    mean_norm: torch.Tensor  # [n_layers], mean L2 norm of the residual over both completions
    n_items: int
    meta: dict
    matching: torch.Tensor | None = None  # [n_items, n_layers, hidden] when kept
    not_matching: torch.Tensor | None = None

    def save(self, path: Path) -> None:
        tensors = {"mean_diff": self.mean_diff.contiguous(), "mean_norm": self.mean_norm.contiguous()}
        if self.matching is not None:
            tensors["matching"] = self.matching.contiguous()
            tensors["not_matching"] = self.not_matching.contiguous()
        meta = {"steerscale": json.dumps(dict(self.meta, n_items=self.n_items))}
        _atomic_save(tensors, Path(path), meta)

    @classmethod
    def load(cls, path: Path) -> "ActivationStats":
        t, meta = read_safetensors(path)
        m = json.loads(meta.get("steerscale", "{}"))
        return cls(t["mean_diff"], t["mean_norm"], int(m.get("n_items", 0)), m, t.get("matching"), t.get("not_matching"))


def _atomic_save(tensors: dict, path: Path, metadata: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)


def read_safetensors(path) -> tuple[dict, dict]:
    """Load tensors and metadata; a missing, truncated or corrupted file is a one-line error."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise SteerscaleError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for bad headers/lengths
        raise SteerscaleError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise SteerscaleError(f"{path}: tensor {name!r} contains NaN or Inf")
    return tensors, meta


def cache_key(model_name: str, n_params: int, dtype: str, items, template: str, system: str | None) -> str:
    payload = json.dumps(
        [model_name, n_params, dtype, dataset_hash(items), template, system or "", "answer_token"], sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@torch.no_grad()
def collect_activations(
    model,
    tokenizer,
    encoded: list[Encoded],
    batch_size: int = 8,
    keep: bool = False,
    progress: bool = True,
    meta: dict | None = None,
) -> ActivationStats:
    """Mean over items of (act with matching letter - act with non-matching letter), every layer."""
    n_layers = len(get_layers(model))
    dev = model_device(model)
    pad_id = pad_id_of(tokenizer)
    diff_sum = None
    norm_sum = torch.zeros(n_layers, dtype=torch.float64)
    kept_m, kept_n = [], []
    half = max(1, batch_size // 2)
    for idx in tqdm(list(batches(len(encoded), half)), desc="activations", disable=not progress, leave=False):
        seqs = []
        for i in idx:
            e = encoded[i]
            seqs.append(e.prefix_ids + [e.letter_ids[e.item.matching]])
        for i in idx:
            e = encoded[i]
            seqs.append(e.prefix_ids + [e.letter_ids[e.item.not_matching]])
        b = pad_left(seqs, pad_id).to(dev)
        with capture(model) as store:
            model(**b.model_inputs(), use_cache=False)
        acts = torch.stack([store[l][0] for l in range(n_layers)], dim=1).float().cpu()  # [2k, L, H]
        if not torch.isfinite(acts).all():
            raise SteerscaleError("activations contain NaN or Inf (try --dtype float32)")
        k = len(idx)
        am, an = acts[:k], acts[k:]
        d = (am - an).double().sum(0)
        diff_sum = d if diff_sum is None else diff_sum + d
        norm_sum += acts.double().norm(dim=-1).sum(0)
        if keep:
            kept_m.append(am)
            kept_n.append(an)
    n = len(encoded)
    return ActivationStats(
        mean_diff=(diff_sum / n).float(),
        mean_norm=(norm_sum / (2 * n)).float(),
        n_items=n,
        meta=dict(meta or {}),
        matching=torch.cat(kept_m) if keep else None,
        not_matching=torch.cat(kept_n) if keep else None,
    )
