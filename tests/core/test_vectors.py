"""Mean-difference vectors: a planted direction is recovered; steering with it moves p the right way."""

import pytest
import torch

from steerscale.core.data import parse_item
from steerscale.errors import SteerscaleError
from steerscale.core.evaluate import ab_scores
from steerscale.core.prompts import encode_items
from steerscale.core.steering import steer
from steerscale.core.vectors import SteeringVectors, train_vectors
from conftest import TinyTokenizer, make_model
from builders import identity_llama, letter_items


@pytest.mark.parametrize("frac_a", [1.0, 0.75, 0.5])
def test_planted_direction_is_recovered(frac_a):
    # identity_llama plants d as a pure letter direction (act(A) - act(B) = d): CAA's raw mean ('none') is
    # s_bar * d, the letter-balanced default cancels it (0) wherever both letters match some item
    torch.manual_seed(0)
    d = torch.randn(32)
    model, tok = identity_llama(d)
    vecs = train_vectors(model, tok, letter_items(8, frac_a), template="plain", batch_size=4, progress=False,
                         letter_balance="none")
    expected = (2 * frac_a - 1) * d
    for l in range(vecs.n_layers):
        torch.testing.assert_close(vecs[l], expected, atol=1e-5, rtol=1e-5)
    if frac_a < 1:
        bal = train_vectors(model, tok, letter_items(8, frac_a), template="plain", batch_size=4, progress=False)
        assert float(bal.vectors.abs().max()) < 1e-5


def test_normalizations():
    torch.manual_seed(0)
    model, tok = identity_llama(torch.randn(32))
    unit = train_vectors(model, tok, letter_items(4, 1.0), template="plain", normalize="unit", progress=False, letter_balance="none")
    torch.testing.assert_close(unit.norms(), torch.ones(unit.n_layers))
    res = train_vectors(model, tok, letter_items(4, 1.0), template="plain", normalize="residual", progress=False, letter_balance="none")
    mean_norm = torch.tensor(res.meta["mean_residual_norm"])
    torch.testing.assert_close(res.norms(), mean_norm, atol=1e-4, rtol=1e-4)


def test_planted_direction_steers_the_right_way():
    torch.manual_seed(0)
    d = torch.randn(32) * 0.5
    model, tok = identity_llama(d)
    train = letter_items(8, 1.0)  # A always matches: vector = E_A - E_B
    vecs = train_vectors(model, tok, train, template="plain", progress=False, letter_balance="none")
    enc = encode_items(tok, letter_items(6, 0.5), "plain")
    base = ab_scores(model, tok, enc).logit_diff
    shifts = []
    for m in (-2.0, 2.0):
        with steer(model, vecs, [2], m) as s:
            shifts.append(ab_scores(model, tok, enc, steering=s).logit_diff - base)
    is_a = torch.tensor([e.item.matching == "A" for e in enc]).numpy()
    # +m pushes toward A: items whose matching letter is A gain, items matching B lose; -m the reverse.
    assert (shifts[1][is_a] > 0).all() and (shifts[1][~is_a] < 0).all()
    assert (shifts[0][is_a] < 0).all() and (shifts[0][~is_a] > 0).all()


def test_save_load_roundtrip_and_mismatch(tmp_path, tiny):
    model, _, info = tiny
    v = SteeringVectors(torch.randn(info.n_layers, info.hidden_size), {"model": "x"})
    p = v.save(tmp_path / "v.safetensors")
    w = SteeringVectors.load(p)
    assert torch.equal(v.vectors, w.vectors) and w.meta == {"model": "x"}
    w.check_model(model)
    with pytest.raises(SteerscaleError, match="have 3 layers x hidden"):
        SteeringVectors(torch.randn(info.n_layers - 1, info.hidden_size), {}).check_model(model)
    with pytest.raises(SteerscaleError, match="hidden 16"):
        SteeringVectors(torch.randn(info.n_layers, 16), {}).check_model(model)


def test_bad_vector_files(tmp_path):
    p = tmp_path / "v.safetensors"
    SteeringVectors(torch.randn(4, 8)).save(p)
    raw = p.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SteerscaleError, match="trunc.safetensors: not a readable safetensors file"):
        SteeringVectors.load(tmp_path / "trunc.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(SteerscaleError, match="junk.safetensors: not a readable"):
        SteeringVectors.load(tmp_path / "junk.safetensors")
    with pytest.raises(SteerscaleError, match="NaN or Inf"):
        SteeringVectors(torch.tensor([[float("nan"), 1.0]]))


def test_activation_cache_is_reused(tmp_path, monkeypatch):
    from steerscale.core import vectors as vectors_mod

    torch.manual_seed(0)
    model, tok = identity_llama(torch.randn(32))
    its = letter_items(4, 1.0)
    v1 = train_vectors(model, tok, its, template="plain", cache_dir=tmp_path, progress=False, letter_balance="none")
    files = list(tmp_path.glob("activations-*.safetensors"))
    assert len(files) == 1
    real = vectors_mod.collect_activations
    with monkeypatch.context() as mp:  # same model and data: a cache hit, nothing collected
        mp.setattr(vectors_mod, "collect_activations", lambda *a, **k: pytest.fail("cache not reused"))
        v2 = train_vectors(model, tok, its, template="plain", cache_dir=tmp_path, progress=False, letter_balance="none")
    assert torch.equal(v1.vectors, v2.vectors) and vectors_mod.collect_activations is real
    with torch.no_grad():  # other weights of the same shape: the cache (keyed on the weights) is not used
        model.model.embed_tokens.weight.mul_(2)
    v2b = train_vectors(model, tok, its, template="plain", cache_dir=tmp_path, progress=False, letter_balance="none")
    assert len(list(tmp_path.glob("activations-*.safetensors"))) == 2 and not torch.equal(v1.vectors, v2b.vectors)
    for f in tmp_path.glob("activations-*.safetensors"):
        if f not in files:
            f.unlink()
    v3 = train_vectors(model, tok, its[:3], template="plain", cache_dir=tmp_path, progress=False, letter_balance="none")
    assert len(list(tmp_path.glob("activations-*.safetensors"))) == 2 and not torch.equal(v1.vectors, v3.vectors)
