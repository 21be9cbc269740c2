"""Capability measures: cross-entropy on neutral text (and its increase under steering), and degeneration.

* **capability cost** (`neutral_cross_entropy`): token-weighted mean cross-entropy (nats per token) of
  neutral paragraphs (raw text, no chat template, every position steered), steered vs unsteered;
  perplexity = exp(CE). `CrossEntropy.ci` gives the mean and its bootstrap interval over paragraphs, or
  with ``base=`` the paired CE increase (the same paragraphs resampled together; stats.ratio_ci).
* **degeneration** of generations (`degeneration`): rep_3 (fraction of word 3-grams that repeat an earlier
  3-gram in the same response), distinct-1 and distinct-2 (unique / total word 1- and 2-grams).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..core.batching import batches, model_device, pad_id_of, pad_left
from ..core.prompts import _encode
from ..errors import SteerscaleError
from ..stats import ratio_ci

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..core.types import Tokenizer


@dataclass
class CrossEntropy:
    nll_sum: np.ndarray  # per text, nats
    n_tokens: np.ndarray  # per text, predicted tokens

    @property
    def mean(self) -> float:
        """Token-weighted mean CE over all texts."""
        return float(self.nll_sum.sum() / self.n_tokens.sum())

    def ci(self, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
           base: "CrossEntropy | None" = None) -> tuple[float, float, float]:
        """Token-weighted mean with a bootstrap interval over texts (ratio of resampled sums).

        With `base` (the same texts under other conditions): the paired difference self - base, both
        resampled with the same texts."""
        return ratio_ci(self.nll_sum, self.n_tokens, n_boot, seed, level,
                        base=None if base is None else (base.nll_sum, base.n_tokens))


@torch.no_grad()
def neutral_cross_entropy(model: PreTrainedModel, tokenizer: Tokenizer, texts: list[str], batch_size: int = 8,
                          max_tokens: int = 256, steering=None) -> CrossEntropy:
    """Per-text next-token cross-entropy of raw `texts` (tokenizer's default BOS, no chat template).

    Under steering with positions="instruction_end" every position is steered (start 0): neutral text
    has no instruction. Texts are cut to `max_tokens` tokens.
    """
    dev = model_device(model)
    pad_id = pad_id_of(tokenizer)
    nll, cnt = [], []
    for idx in batches(len(texts), batch_size):
        seqs = [_encode(tokenizer, texts[i])[:max_tokens] for i in idx]
        for s, i in zip(seqs, idx):
            if len(s) < 2:
                raise SteerscaleError(f"neutral text {i}: fewer than 2 tokens")
        b = pad_left(seqs, pad_id).to(dev)
        if steering is not None:
            steering.for_batch(b, instruction=False)  # neutral text has no instruction: every position
        logits = model(**b.model_inputs(), use_cache=False).logits.float()
        lp = torch.log_softmax(logits[:, :-1], -1)
        tgt = b.input_ids[:, 1:]
        tok_nll = -lp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        valid = (b.attention_mask[:, :-1] * b.attention_mask[:, 1:]).bool()
        nll.extend((tok_nll * valid).sum(1).double().cpu().tolist())
        cnt.extend(valid.sum(1).cpu().tolist())
    return CrossEntropy(np.array(nll, dtype=np.float64), np.array(cnt, dtype=np.float64))


_WORD_RE = re.compile(r"\w+|[^\w\s]")


def degeneration(text: str) -> dict:
    """rep_3, distinct_1, distinct_2 and n_words of one response (word-level, lowercased; NaN when too short)."""
    w = _WORD_RE.findall(text.lower())

    def grams(n):
        return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]

    def distinct(n):
        g = grams(n)
        return len(set(g)) / len(g) if g else float("nan")

    g3 = grams(3)
    rep3 = (len(g3) - len(set(g3))) / len(g3) if g3 else float("nan")
    return {"rep_3": rep3, "distinct_1": distinct(1), "distinct_2": distinct(2), "n_words": len(w)}
