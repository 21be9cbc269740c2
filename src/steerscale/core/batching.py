"""Left-padded batches of token lists, and where a model's inputs go.

``pad_left`` is the one padding rule every forward pass uses (evaluation, activations, both sweep
engines, generation): rows are padded on the left, position ids count real tokens only (so padding
never shifts a position), and ``Batch.instruction_end`` is each row's last instruction token in padded
coordinates (where ``positions="instruction_end"`` steering starts; ``steering.Steering.for_batch``
reads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from .types import Tokenizer


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


def model_device(model: PreTrainedModel) -> torch.device:
    """The device of the model's first parameter (where its inputs go)."""
    return next(model.parameters()).device


def pad_id_of(tokenizer: Tokenizer) -> int:
    """The tokenizer's pad token id, else its end-of-sequence id, else 0."""
    pid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pid if pid is not None else 0)


def batches(n: int, size: int):
    """Index ranges 0..n-1 in consecutive chunks of `size` (the last may be shorter)."""
    for i in range(0, n, size):
        yield range(i, min(i + size, n))
