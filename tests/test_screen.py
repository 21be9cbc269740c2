"""The gradient screen (engines/screen.py) and the screened sweep (screening.py): the gradient equals a
central finite difference of the exact score; a planted direction ranks its layer first; a wrong screen is
caught by the spot check; screened-out layers are never measured; a killed run resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ARCH_CONFIGS, TinyTokenizer, make_model
from steerscale.data import encode_items
from steerscale.engines import naive_scores
from steerscale.engines.screen import GradScreen
from steerscale.models import model_info
from steerscale.sweep import SweepConfig
from test_fast import varied_items

pytestmark = pytest.mark.usefixtures("one_thread")


def _exact(model, tok, vecs, enc, cfg, layer, m):
    """The exact score with m * vecs[layer] added (the naive engine's hook and evaluate.letter_scores' formula),
    in float64 end to end (ab_scores rounds its log-softmax to float32, too coarse for a finite difference)."""
    from steerscale.batching import pad_left
    from steerscale.evaluate import last_logits, letter_scores
    from steerscale.steering import steer

    out = []
    with torch.no_grad(), steer(model, vecs, [layer], m, positions=cfg.positions) as s:
        for e in enc:
            b = pad_left([e.prefix_ids], 0, [e.instruction_end])
            s.for_batch(b)
            out.append(letter_scores(torch.log_softmax(last_logits(model, b.model_inputs()).double(), -1), [e]).score)
    return np.concatenate(out)


def _fd(model, tok, vecs, enc, cfg, layer, h=1e-2):
    """Central finite difference with one Richardson step (error O(h^4)): h is large because the RMSNorm of
    most architectures computes in float32 even in a float64 model (transformers upcasts), which puts ~1e-7
    of rounding noise on every score; at h = 1e-2 that is ~1e-5 of the derivative."""
    def d(e):
        return (_exact(model, tok, vecs, enc, cfg, layer, e) - _exact(model, tok, vecs, enc, cfg, layer, -e)) / (2 * e)

    return (4 * d(h / 2) - d(h)) / 3


def _setup(arch, dtype=torch.float64, n=5):
    model = make_model(arch).to(dtype)
    tok = TinyTokenizer()
    info = model_info(model, name=f"tiny-{arch}")
    torch.manual_seed(1)
    vecs = torch.randn(info.n_layers, info.hidden_size, dtype=dtype)
    return model, tok, info, vecs, encode_items(tok, varied_items(n), "plain")


@pytest.mark.parametrize("arch", ["llama", "gemma2", "gpt2", "gpt_neox", "qwen3", "phi3"])
@pytest.mark.parametrize("positions", ["all", "instruction_end"])
def test_gradient_equals_central_finite_difference(arch, positions):
    """float64, one item per batch (float64 eager attention turns fully masked padding rows into NaN, in the
    reference too; padding is covered by the next test): every layer's ds/dm within 1e-4 relative."""
    model, tok, info, vecs, enc = _setup(arch)
    cfg = SweepConfig(positions=positions, template="plain", batch_size=1).validate(info.n_layers)
    res = GradScreen().gradients(model, tok, vecs, enc, cfg)
    assert res.grad.shape == (info.n_layers, 5)
    fd = np.stack([_fd(model, tok, vecs, enc, cfg, layer) for layer in cfg.layers])
    scale = float(np.abs(fd).max())
    assert scale > 1e-3  # not trivially zero
    err = np.abs(res.grad - fd).max()
    assert err <= 1e-4 * scale, (err, scale)


@pytest.mark.parametrize("arch", list(ARCH_CONFIGS))
@pytest.mark.parametrize("positions", ["all", "instruction_end"])
def test_left_padded_batches_give_the_same_gradients(arch, positions):
    """Every registered architecture, float32: batches of 3 with left padding equal one item per batch; the
    unsteered scores of the screen's forward pass equal ab_scores; the work counter counts both passes."""
    from steerscale.evaluate import ab_scores

    model, tok, info, vecs, enc = _setup(arch, torch.float32)
    one = SweepConfig(positions=positions, template="plain", batch_size=1).validate(info.n_layers)
    three = SweepConfig(positions=positions, template="plain", batch_size=3).validate(info.n_layers)
    a = GradScreen().gradients(model, tok, vecs, enc, one)
    screen = GradScreen()
    b = screen.gradients(model, tok, vecs, enc, three)
    scale = float(np.abs(a.grad).max())
    assert scale > 1e-4
    assert np.abs(a.grad - b.grad).max() <= 1e-4 * scale
    assert np.abs(b.score - ab_scores(model, tok, enc, 3).score).max() < 1e-5
    st = screen.stats
    assert st.forward_calls == st.backward_calls == 2 and st.head_rows == 5
    assert st.forward_layer_tokens == st.backward_layer_tokens > 0
    assert all(not p.requires_grad for p in model.parameters())
