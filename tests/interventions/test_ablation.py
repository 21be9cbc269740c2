"""Directional ablation hooks and weight orthogonalisation: orthogonalised weights == hooked ablation to 1e-5."""

import copy

import pytest
import torch

from conftest import make_model
from steerscale.errors import SteerscaleError
from steerscale.core.models import get_layers
from steerscale.interventions.orthogonalize import REFUSED, WRITER_WEIGHTS, orthogonalize, save_orthogonalized
from steerscale.core.steering import ablate, capture, steer

EXACT = sorted(WRITER_WEIGHTS)  # llama, mistral, qwen2, qwen3, gemma, phi3, olmo, gpt2, gpt_neox


def _ids(seed=5, shape=(2, 11)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, 60, shape, generator=g)


def _dirs(hidden, k=1, seed=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, hidden, generator=g).squeeze(0) * 4.0


@pytest.mark.parametrize("arch", EXACT)
@pytest.mark.parametrize("tied", [False, True])
def test_orthogonalized_equals_hooked_ablation(arch, tied, one_thread):
    model = make_model(arch, tie_word_embeddings=tied)
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    assert (inp.weight.data_ptr() == out.weight.data_ptr()) == tied, "tiny model not tied/untied as asked"
    hidden = inp.weight.shape[1]
    d = _dirs(hidden)
    ids = _ids()
    base = model(input_ids=ids).logits
    with ablate(model, d):
        hooked = model(input_ids=ids).logits
    assert (hooked - base).abs().max() > 1e-3, "ablation had no effect: the test could not fail"
    head_before = out.weight.detach().clone()
    edited = copy.deepcopy(model)
    summary = orthogonalize(edited, d)
    assert summary["untied_embeddings"] == tied
    unhooked = edited(input_ids=ids).logits
    torch.testing.assert_close(unhooked, hooked, atol=1e-5, rtol=1e-5)
    # the head keeps the original matrix; the original model is untouched
    torch.testing.assert_close(edited.get_output_embeddings().weight, head_before, atol=0, rtol=0)
    torch.testing.assert_close(model(input_ids=ids).logits, base, atol=0, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_subspace_ablation_and_residual_has_no_component(arch, one_thread):
    model = make_model(arch)
    hidden = model.get_input_embeddings().weight.shape[1]
    d = _dirs(hidden, k=2)
    ids = _ids()
    with ablate(model, d) as q:
        with capture(model, position=slice(None)) as store:
            hooked = model(input_ids=ids).logits
    assert q.shape == (2, hidden)
    for l, hs in store.items():  # every layer's output (the residual) has no component along the span
        assert (hs[0] @ q.float().T).abs().max() < 1e-4, f"layer {l} output keeps a component along the directions"
    edited = copy.deepcopy(model)
    orthogonalize(edited, d)
    torch.testing.assert_close(edited(input_ids=ids).logits, hooked, atol=1e-5, rtol=1e-5)


def test_layer_output_projection_alone_is_not_equivalent(one_thread):
    """Why the hooks sit on attention/MLP outputs: projecting only decoder-layer outputs lets the MLP read
    the attention's component along the direction, and differs from orthogonalised weights."""
    from steerscale.core.steering import layer_hooks

    model = make_model("llama")
    d = _dirs(32)
    q = d / d.norm()
    ids = _ids()
    with ablate(model, d):
        full = model(input_ids=ids).logits
    proj = lambda h: h - (h @ q)[..., None] * q  # noqa: E731
    n = len(get_layers(model))
    emb = model.get_input_embeddings().register_forward_hook(lambda m, a, o: proj(o))
    try:
        with layer_hooks(model, {l: proj for l in range(n)}):
            outputs_only = model(input_ids=ids).logits
    finally:
        emb.remove()
    assert (outputs_only - full).abs().max() > 1e-3


def test_ablate_hooks_removed_and_layer_subset(one_thread):
    model = make_model("llama")
    ids = _ids()
    base = model(input_ids=ids).logits
    layers = get_layers(model)
    with pytest.raises(RuntimeError, match="boom"):
        with ablate(model, _dirs(32)):
            raise RuntimeError("boom")
    assert all(not l._forward_pre_hooks and not l.self_attn._forward_hooks and not l.mlp._forward_hooks
               for l in layers)
    torch.testing.assert_close(model(input_ids=ids).logits, base, atol=0, rtol=0)
    # ablating only layer 3's writes leaves layers 0-2 unchanged
    with capture(model, position=slice(None)) as ref:
        model(input_ids=ids)
    with ablate(model, _dirs(32), layers=[3], embedding=False):
        with capture(model, position=slice(None)) as got:
            model(input_ids=ids)
    for l in range(3):
        torch.testing.assert_close(got[l][0], ref[l][0], atol=0, rtol=0)
    assert (got[3][0] - ref[3][0]).abs().max() > 1e-4


@pytest.mark.parametrize("arch", sorted(REFUSED.keys() & {"gemma2", "gemma3_text"}))
def test_post_norm_architectures_refused_but_hookable(arch, one_thread):
    model = make_model(arch)
    hidden = model.get_input_embeddings().weight.shape[1]
    ids = _ids()
    base = model(input_ids=ids).logits
    with ablate(model, _dirs(hidden)):
        hooked = model(input_ids=ids).logits
    assert (hooked - base).abs().max() > 1e-4
    with pytest.raises(SteerscaleError, match="cannot be orthogonalised exactly"):
        orthogonalize(copy.deepcopy(model), _dirs(hidden))


def test_bad_directions(one_thread):
    model = make_model("llama")
    with pytest.raises(SteerscaleError, match="zero norm"):
        with ablate(model, torch.zeros(32)):
            pass
    with pytest.raises(SteerscaleError, match="hidden size is 32"):
        with ablate(model, torch.ones(16)):
            pass
    with pytest.raises(SteerscaleError, match="linearly dependent"):
        with ablate(model, torch.stack([torch.ones(32), 2 * torch.ones(32)])):
            pass


def test_saved_folder_reloads_with_same_logits(tmp_path, one_thread):
    from tinydir import save_tiny_model

    from steerscale.core.models import load_model

    src = save_tiny_model(tmp_path / "src")
    model, tok, _ = load_model(str(src))
    model.config.tie_word_embeddings = False
    d = _dirs(32)
    ids = _ids()
    with ablate(model, d):
        hooked = model(input_ids=ids).logits
    out = save_orthogonalized(model, tok, d, tmp_path / "orth", meta={"source": "test"})
    assert not list(out.glob("*.bin")) and list(out.glob("*.safetensors"))
    m2, tok2, info = load_model(str(out))
    torch.testing.assert_close(m2(input_ids=ids).logits, hooked, atol=1e-5, rtol=1e-5)
    assert tok2("hello").input_ids == tok("hello").input_ids


def test_saved_tied_model_reloads_untied(tmp_path, one_thread):
    from transformers import AutoModelForCausalLM

    model = make_model("gemma")  # tied, scaled embeddings
    d = _dirs(32)
    ids = _ids()
    with ablate(model, d):
        hooked = model(input_ids=ids).logits
    out = save_orthogonalized(model, None, d, tmp_path / "orth")
    m2 = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True).eval()
    assert m2.get_output_embeddings().weight.data_ptr() != m2.get_input_embeddings().weight.data_ptr()
    torch.testing.assert_close(m2(input_ids=ids).logits, hooked, atol=1e-5, rtol=1e-5)
