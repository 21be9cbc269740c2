"""The gradient screen: d(score)/dm at m = 0 for every layer at once, from one forward + one backward pass.

Not a point engine (it computes no (layer, multiplier) point and is not in ``ENGINES``): it ranks layers so
that the exact engine sweeps only the promising ones (``steerscale.screening``; ``--screen grad``).

What it computes: each swept layer L gets its own zero multiplier per item, ``m_L``, added through the same
hook arithmetic as the engines (``steering.steer_grad`` -> ``Steering.add``: same vectors, same positions
rule, same left padding); one forward pass per batch gives the unsteered scores, one backward pass (no
weight gradients) gives ``ds_i/dm_L`` at m = 0 for every item i and layer L. The score is the A/B score
of ``evaluate.letter_scores`` (softmax over the choices' answer tokens), differentiated by autograd: for two
choices that is ``s(1 - s) * d(logit diff)/dm``; for more choices the general softmax derivative
``s_match * (d lp_match/dm - sum_c s_c * d lp_c/dm)``.

First order only: ``m * grad`` predicts Δ(L, m) for small m. It ranks layers (the screen's job), it is not
an effect size at |m| = 1, and it cannot show a +/− asymmetry (the prediction is odd in m).

Work counter (``ScreenStats``): forward and backward calls, decoder layer x token evaluations of each
(padded tokens, as the engines count), head rows. One backward pass costs about one forward pass (no
weight gradients: the input gradients of each matmul only), so the screen is about 2 passes per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..core.batching import batches, model_device, pad_id_of, pad_left
from ..core.evaluate import last_logits
from ..core.models import get_layers
from ..core.steering import steer_grad

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..config import SweepConfig
    from ..core.types import LayerVectors, Tokenizer


@dataclass
class ScreenStats:
    """Work done by the screen, counted as it happens (``layer_tokens`` counts forward and backward alike)."""

    forward_calls: int = 0
    backward_calls: int = 0
    forward_layer_tokens: int = 0
    backward_layer_tokens: int = 0
    head_rows: int = 0

    @property
    def layer_tokens(self) -> int:
        return self.forward_layer_tokens + self.backward_layer_tokens

    def to_dict(self) -> dict:
        return {"forward_calls": self.forward_calls, "backward_calls": self.backward_calls,
                "forward_layer_tokens": self.forward_layer_tokens,
                "backward_layer_tokens": self.backward_layer_tokens, "layer_tokens": self.layer_tokens,
                "head_rows": self.head_rows}


@dataclass
class ScreenResult:
    """Per-item gradients ``grad[layer_index, item]`` = ds/dm at m = 0, and the unsteered scores."""

    layers: list[int]
    grad: np.ndarray  # [len(layers), n_items], float64
    score: np.ndarray  # [n_items] unsteered scores (the forward pass of the screen)
    stats: dict = field(default_factory=dict)

    def mean_grad(self) -> dict[int, float]:
        """Layer -> mean over items of ds/dm (predicted Δ(L, m) ≈ m · this)."""
        g = self.grad.mean(1) if self.grad.size else np.zeros(len(self.layers))
        return {l: float(x) for l, x in zip(self.layers, g)}


def _scores(logits: torch.Tensor, encs) -> torch.Tensor:
    """Differentiable A/B scores [rows] (float64) from last-position logits: ``letter_scores``' formula."""
    logprobs = torch.log_softmax(logits.double(), -1)
    out = []
    for row, e in zip(logprobs, encs):
        choices = list(e.item.choices)
        lp = row[[e.letter_ids[c] for c in choices]]
        out.append(torch.softmax(lp, 0)[choices.index(e.item.matching)])
    return torch.stack(out)


class GradScreen:
    """The gradient screen (``--screen grad``); ``stats`` counts its work across calls."""

    name = "grad"

    def __init__(self):
        self.stats = ScreenStats()

    def gradients(self, model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded,
                  config: SweepConfig, layers: list[int] | None = None) -> ScreenResult:
        """ds_i/dm_L at m = 0 for every item of `encoded` and every layer in `layers` (default
        ``config.layers``); batches of ``config.batch_size`` in item order, left-padded (``pad_left``), steered
        positions per ``config.positions``. One forward and one backward pass per batch."""
        layers = list(config.layers if layers is None else layers)
        n_layers = len(get_layers(model))
        dev = model_device(model)
        pad_id = pad_id_of(tokenizer)
        grads, scores = [], []
        with steer_grad(model, vectors, layers, positions=config.positions) as state:
            for idx in batches(len(encoded), config.batch_size):
                encs = [encoded[i] for i in idx]
                b = pad_left([e.prefix_ids for e in encs], pad_id, [e.instruction_end for e in encs]).to(dev)
                state.for_batch(b)
                s = _scores(last_logits(model, b.model_inputs()), encs)
                ms = [state.multipliers[l] for l in layers]
                g = torch.autograd.grad(s.sum(), ms, allow_unused=True)
                grads.append(np.stack([np.zeros(len(encs)) if x is None else x.detach().cpu().numpy() for x in g]))
                scores.append(s.detach().cpu().numpy())
                tokens = int(b.input_ids.numel())
                self.stats.forward_calls += 1
                self.stats.backward_calls += 1
                self.stats.forward_layer_tokens += n_layers * tokens
                # the backward pass runs from the head down to the earliest screened layer
                self.stats.backward_layer_tokens += (n_layers - min(layers)) * tokens if layers else 0
                self.stats.head_rows += len(encs)
        grad = np.concatenate(grads, 1) if grads else np.zeros((len(layers), 0))
        score = np.concatenate(scores) if scores else np.zeros(0)
        return ScreenResult(layers, grad, score, self.stats.to_dict())

    def describe(self) -> dict:
        return dict({"name": self.name}, **self.stats.to_dict())
