"""Control-vector GGUF export/import (llama.cpp, repeng) and steering-vectors import: round trips and layer mapping."""

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from conftest import make_model  # noqa: E402
from steerscale.errors import SteerscaleError  # noqa: E402
from steerscale.core.interop import export_llama_cpp, import_control_vector, import_steering_vectors, import_vectors
from steerscale.core.steering import layer_hooks, steer
from steerscale.core.vectors import SteeringVectors


def _vecs(n=6, h=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SteeringVectors(torch.randn(n, h, generator=g), {"model": "tiny", "model_type": "llama"})


def test_export_import_round_trip(tmp_path):
    v = _vecs()
    out = export_llama_cpp(v, tmp_path / "cv.gguf", layers=[2, 3, 4], multiplier=1.5)
    back = import_control_vector(out, n_layers=6)
    assert back.vectors.shape == (6, 32)
    assert back.meta["layers_present"] == [2, 3, 4]
    torch.testing.assert_close(back.vectors[[2, 3, 4]], 1.5 * v.vectors[[2, 3, 4]], atol=1e-6, rtol=1e-6)
    assert torch.count_nonzero(back.vectors[[0, 1, 5]]) == 0
    assert back.meta["model_hint"] == "llama"
    # and through the dispatcher, default layers = every layer llama.cpp can address (1..n-1)
    out2 = export_llama_cpp(v, tmp_path / "all.gguf")
    allback = import_vectors(out2, n_layers=6)
    assert allback.meta["layers_present"] == [1, 2, 3, 4, 5]
    torch.testing.assert_close(allback.vectors[1:], v.vectors[1:], atol=0, rtol=0)


def test_gguf_layout_is_what_llama_cpp_reads(tmp_path):
    """The loader's rules (common_control_vector_load_one): tensors direction.N, N >= 1, F32, 1-D, equal size."""
    out = export_llama_cpp(_vecs(), tmp_path / "cv.gguf", layers=[1, 5])
    r = gguf.GGUFReader(str(out))
    assert bytes(r.get_field("general.architecture").parts[-1]).decode() == "controlvector"
    assert int(r.get_field("controlvector.layer_count").parts[-1][0]) == 2
    names = sorted(t.name for t in r.tensors)
    assert names == ["direction.1", "direction.5"]
    for t in r.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32
        assert int(np.prod(t.shape)) == 32 and len([d for d in t.shape if d > 1]) == 1


def _llama_cpp_apply(model, path, strength=1.0):
    """A Python transcription of llama.cpp's control-vector path, to pin the layer mapping:
    common_control_vector_load_one writes direction.N at buffer offset n_embd*(N-1);
    llama_adapter_cvec::apply fills tensors[il] from offset n_embd*(il-1) for il in 1..n_layer-1;
    build_cvec(cur, il) adds tensors[il] to the output of block il (after the FFN residual add)."""
    r = gguf.GGUFReader(str(path))
    n_embd = None
    buf = np.zeros(0, dtype=np.float32)
    for t in r.tensors:
        n = int(t.name.split(".", 1)[1])
        assert n != 0
        data = np.asarray(t.data, dtype=np.float32).reshape(-1)
        n_embd = data.size
        buf = np.concatenate([buf, np.zeros(max(0, n_embd * n - buf.size), np.float32)])
        buf[n_embd * (n - 1): n_embd * n] += data * strength
    n_layer = model.config.num_hidden_layers
    tensors = {}
    for il in range(1, n_layer):
        off = n_embd * (il - 1)
        if off + n_embd <= buf.size:
            tensors[il] = torch.from_numpy(buf[off: off + n_embd].copy())
    return layer_hooks(model, {il: (lambda h, v=v: h + v) for il, v in tensors.items()})


def test_llama_cpp_layer_mapping_matches_steer(tmp_path, one_thread):
    model = make_model("llama")  # 4 layers
    v = _vecs(n=4)
    out = export_llama_cpp(v, tmp_path / "cv.gguf", layers=[2], multiplier=2.0)
    ids = torch.randint(2, 60, (2, 9), generator=torch.Generator().manual_seed(1))
    with _llama_cpp_apply(model, out):
        cpp = model(input_ids=ids).logits
    with steer(model, v, [2], 2.0):
        ours = model(input_ids=ids).logits
    with steer(model, v, [1], 2.0):
        off_by_one = model(input_ids=ids).logits
    torch.testing.assert_close(cpp, ours, atol=1e-5, rtol=1e-5)
    assert (cpp - off_by_one).abs().max() > 1e-3


def test_export_refuses_layer_zero_and_bad_input(tmp_path):
    v = _vecs()
    with pytest.raises(SteerscaleError, match="layer 0"):
        export_llama_cpp(v, tmp_path / "cv.gguf", layers=[0, 1])
    with pytest.raises(SteerscaleError, match="out of range"):
        export_llama_cpp(v, tmp_path / "cv.gguf", layers=[6])
    with pytest.raises(SteerscaleError, match=".gguf"):
        export_llama_cpp(v, tmp_path / "cv.bin", layers=[1])
    assert not list(tmp_path.iterdir()), "a refused export left files behind"


def _repeng_style(path, directions: dict, arch="controlvector", dtype=np.float32):
    """Write a file the way repeng's ControlVector.export_gguf does."""
    w = gguf.GGUFWriter(str(path), arch)
    w.add_string(f"{arch}.model_hint", "mistral")
    w.add_uint32(f"{arch}.layer_count", len(directions))
    for layer, d in directions.items():
        w.add_tensor(f"direction.{layer}", d.astype(dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_import_repeng_file(tmp_path):
    rng = np.random.default_rng(0)
    dirs = {l: rng.standard_normal(32).astype(np.float32) for l in range(7, 0, -1)}  # repeng writes top-down
    _repeng_style(tmp_path / "r.gguf", dirs)
    v = import_vectors(tmp_path / "r.gguf", n_layers=8)
    assert v.meta["model_hint"] == "mistral" and v.meta["layers_present"] == list(range(1, 8))
    for l, d in dirs.items():
        np.testing.assert_array_equal(v.vectors[l].numpy(), d)
    with pytest.raises(SteerscaleError, match="layer 7, but n_layers is 4"):
        import_vectors(tmp_path / "r.gguf", n_layers=4)


def test_import_refuses_invalid_control_vectors(tmp_path):
    _repeng_style(tmp_path / "zero.gguf", {0: np.ones(8)})
    with pytest.raises(SteerscaleError, match="direction.0"):
        import_control_vector(tmp_path / "zero.gguf")
    _repeng_style(tmp_path / "f16.gguf", {1: np.ones(8)}, dtype=np.float16)
    with pytest.raises(SteerscaleError, match="expected F32"):
        import_control_vector(tmp_path / "f16.gguf")
    _repeng_style(tmp_path / "model.gguf", {1: np.ones(8)}, arch="llama")
    with pytest.raises(SteerscaleError, match="general.architecture is 'llama'"):
        import_control_vector(tmp_path / "model.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(SteerscaleError, match="not a readable GGUF"):
        import_control_vector(tmp_path / "junk.gguf")


def test_import_steering_vectors_safetensors_and_refuse_pickle(tmp_path):
    from safetensors.torch import save_file

    acts = {3: torch.randn(32), 5: torch.randn(32)}
    save_file({f"layer_activations.{k}": v for k, v in acts.items()}, str(tmp_path / "sv.safetensors"),
              metadata={"layer_type": "decoder_block"})
    v = import_vectors(tmp_path / "sv.safetensors", n_layers=6)
    assert v.meta["layers_present"] == [3, 5]
    torch.testing.assert_close(v.vectors[3], acts[3], atol=0, rtol=0)
    torch.save(acts, tmp_path / "sv.pt")
    with pytest.raises(SteerscaleError, match="pickle files are refused"):
        import_vectors(tmp_path / "sv.pt")
    save_file({"layer_activations.1": torch.randn(32)}, str(tmp_path / "attn.safetensors"),
              metadata={"layer_type": "attention"})
    with pytest.raises(SteerscaleError, match="decoder_block"):
        import_steering_vectors(tmp_path / "attn.safetensors")


def test_imported_vectors_steer_a_model(tmp_path, one_thread):
    """An imported file is a SteeringVectors that fits the model and steers at the named layer."""
    model = make_model("llama")
    v = _vecs(n=4)
    back = import_vectors(export_llama_cpp(v, tmp_path / "cv.gguf", layers=[3]), n_layers=4)
    back.check_model(model)
    ids = torch.randint(2, 60, (1, 7), generator=torch.Generator().manual_seed(2))
    with steer(model, back, [3], 1.0):
        a = model(input_ids=ids).logits
    with steer(model, v, [3], 1.0):
        b = model(input_ids=ids).logits
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
