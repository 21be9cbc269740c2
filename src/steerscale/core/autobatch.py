"""``--batch-size auto``: the largest batch that fits, as lm-evaluation-harness's ``--batch_size auto``.

On an accelerator the batch size is found by trying forward passes from ``START`` down, halving after each
out-of-memory error (``choose_batch_size``); the probe is one forward pass over ``PROBE_TOKENS`` tokens per row
(capped at the model's context), longer than the built-in items, so the chosen size leaves room for them. On a
CPU there is no memory wall to find (a larger batch only uses more RAM, not less time), so ``CPU_DEFAULT`` is used.
The chosen size is what the run uses and records (the manifest's ``config.batch_size``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

import torch

from .batching import model_device

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

AUTO = "auto"
CPU_DEFAULT = 8  # the batch_size option's default
START = 256
PROBE_TOKENS = 512


def is_oom(e: BaseException) -> bool:
    """An out-of-memory error of torch (CUDA, MPS, or the CPU allocator)."""
    if isinstance(e, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


def choose_batch_size(probe: Callable[[int], None], start: int = START, on_oom: Callable[[], None] | None = None
                      ) -> int:
    """The largest of start, start/2, start/4, ..., 1 for which ``probe(size)`` does not run out of memory.
    Any other error propagates; out of memory at batch size 1 too raises the last error."""
    size = max(1, int(start))
    while True:
        try:
            probe(size)
            return size
        except Exception as e:
            if not is_oom(e) or size == 1:
                raise
        # outside the except block: the error and its frames (which hold the failed batch's tensors) are gone,
        # so on_oom (torch.cuda.empty_cache) can give their memory back before the next try
        log.info("batch size %d: out of memory, trying %d", size, size // 2)
        if on_oom is not None:
            on_oom()
        size //= 2


def auto_batch_size(model: PreTrainedModel, start: int = START, tokens: int = PROBE_TOKENS) -> int:
    """The batch size for `model` on its device: ``CPU_DEFAULT`` on a CPU, else found by ``choose_batch_size``
    with forward passes of `tokens` tokens per row (capped at the model's context)."""
    device = model_device(model)
    if device.type == "cpu":
        return CPU_DEFAULT
    ctx = getattr(model.config.get_text_config(), "max_position_embeddings", None) or tokens
    T = max(1, min(tokens, int(ctx)))

    @torch.no_grad()
    def probe(b: int) -> None:
        ids = torch.ones((b, T), dtype=torch.long, device=device)
        model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, logits_to_keep=1)

    def free() -> None:
        if device.type == "cuda":
            torch.cuda.empty_cache()

    size = choose_batch_size(probe, start, on_oom=free)
    free()
    return size
