"""Checkpoints of one name and shape are told apart: weight fingerprint, activation cache, resume, reproduce."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from steerscale import cli, load_dataset, load_model, run_sweep, train_vectors
from steerscale.core.activations import cache_key
from steerscale.errors import SteerscaleError
from steerscale.core.models import model_files_fingerprint, weights_fingerprint
from steerscale.config import SweepConfig
from tinydir import save_tiny_model, write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Two checkpoints saved under the same folder name 'm', same shape, different weights."""
    d = tmp_path_factory.mktemp("two")
    a = save_tiny_model(d / "a" / "m", layers=3, hidden=32, seed=0)
    b = save_tiny_model(d / "b" / "m", layers=3, hidden=32, seed=1)
    data = write_dataset(d / "data.json", 6)
    return {"dir": d, "a": a, "b": b, "data": data}


def test_fingerprint_is_stable_and_sees_weights_dtype_and_small_edits():
    from conftest import make_model

    m1, m2, other = make_model("llama", seed=0), make_model("llama", seed=0), make_model("llama", seed=1)
    assert weights_fingerprint(m1) == weights_fingerprint(m2) != weights_fingerprint(other)
    norm = m2.model.norm.weight  # a small tensor: every element is read
    with torch.no_grad():
        norm[3] += 1e-3
    assert weights_fingerprint(m2) != weights_fingerprint(m1)
    assert weights_fingerprint(m1.to(torch.bfloat16)) != weights_fingerprint(other.to(torch.bfloat16))
    assert weights_fingerprint(m1) != weights_fingerprint(make_model("llama", seed=0))  # bf16 vs float32
    assert weights_fingerprint(make_model("gpt2")) == weights_fingerprint(make_model("gpt2"))  # tied head


def test_two_checkpoints_same_name_and_shape(two, tmp_path):
    ma, tok, ia = load_model(str(two["a"]))
    mb, _, ib = load_model(str(two["b"]))
    assert ia.name == ib.name == "m" and ia.n_params == ib.n_params and ia.dtype == ib.dtype
    assert ia.weights_fingerprint and ia.weights_fingerprint != ib.weights_fingerprint
    items = load_dataset(str(two["data"]))
    keys = [cache_key(i.name, i.n_params, i.dtype, items, "plain", None, spec=i.spec,
                      fingerprint=i.weights_fingerprint) for i in (ia, ib)]
    assert keys[0] != keys[1]
    # the same cache folder: the second checkpoint gets its own vectors, not the first's
    cache = tmp_path / "cache"
    va = train_vectors(ma, tok, items, "plain", cache_dir=cache, progress=False, info=ia)
    vb = train_vectors(mb, tok, items, "plain", cache_dir=cache, progress=False, info=ib)
    fresh = train_vectors(mb, tok, items, "plain", progress=False, info=ib)
    assert torch.equal(vb.vectors, fresh.vectors) and not torch.allclose(va.vectors, vb.vectors)
    assert vb.meta["weights_fingerprint"] == ib.weights_fingerprint
    assert len(list(cache.glob("activations-*.safetensors"))) == 2
    # resuming the first checkpoint's sweep folder with the second is refused, naming the fingerprint
    cfg = SweepConfig(layers=[0, 2], multipliers=[-1, 0, 1], template="plain", n_bootstrap=10)
    run_sweep(ma, tok, va, items, cfg, info=ia, out_dir=tmp_path / "run", progress=False)
    with pytest.raises(SteerscaleError, match=r"different setup \(model\.weights_fingerprint: "):
        run_sweep(mb, tok, va, items, cfg, info=ib, out_dir=tmp_path / "run", progress=False)


def test_cli_resume_with_another_checkpoint_is_refused(two, tmp_path, capsys):
    vec = tmp_path / "v.safetensors"
    assert cli.main(["train", "--model", str(two["a"]), "--data", str(two["data"]), "--template", "plain",
                     "--out", str(vec)]) == 0
    args = ["sweep", "--data", str(two["data"]), "--vectors", str(vec), "--template", "plain", "--layers", "0-2",
            "--multipliers=-1,0,1", "--out", str(tmp_path / "run")]
    assert cli.main(args + ["--model", str(two["a"])]) == 0
    before = (tmp_path / "run" / "items.csv").read_bytes()
    capsys.readouterr()
    # vectors made on checkpoint a are foreign to b (same name and shape, another weights fingerprint)
    assert cli.main(args + ["--model", str(two["b"])]) == 2
    assert "their weights fingerprint is" in capsys.readouterr().err
    # allowed anyway: the folder, made with checkpoint a, still refuses to mix in b's points
    assert cli.main(args + ["--model", str(two["b"]), "--allow-foreign-vectors"]) == 2
    assert "model.weights_fingerprint" in capsys.readouterr().err
    assert (tmp_path / "run" / "items.csv").read_bytes() == before  # nothing mixed in


def test_files_fingerprint_sees_new_weights_under_the_same_path(two, tmp_path):
    p = tmp_path / "m"
    shutil.copytree(two["a"], p)
    fa = model_files_fingerprint(str(p))
    assert fa and fa == model_files_fingerprint(str(two["a"]))  # content, not path or mtime
    shutil.copy(two["b"] / "model.safetensors", p / "model.safetensors")
    assert model_files_fingerprint(str(p)) not in (None, fa)
    assert model_files_fingerprint("no-such-org/no-such-model") is None


def test_reproduce_reruns_on_new_weights_and_force_recomputes_activations(two, tmp_path, monkeypatch):
    from steerscale.core import activations
    from steerscale.reproduce.run import reproduce

    spec = tmp_path / "model"
    shutil.copytree(two["a"], spec)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f"""
[run]
n_bootstrap = 20
[data]
train = "{two['data']}"
test = "{two['data']}"
[sweep]
template = "plain"
layers = [0, 2]
[[models]]
spec = "{spec}"
name = "m"
""")
    out = tmp_path / "out"
    assert [r["status"] for r in reproduce(cfg, out, progress=False)["runs"]] == ["ran"]
    man = json.loads((out / "m" / "manifest.json").read_text())
    v1 = (out / "m" / "vectors.safetensors").read_bytes()
    assert [r["status"] for r in reproduce(cfg, out, progress=False)["runs"]] == ["reused"]
    # another checkpoint of the same shape under the same spec: not "complete", fresh vectors
    shutil.copy(two["b"] / "model.safetensors", spec / "model.safetensors")
    assert [r["status"] for r in reproduce(cfg, out, progress=False)["runs"]] == ["ran"]
    man2 = json.loads((out / "m" / "manifest.json").read_text())
    assert man2["model"]["weights_fingerprint"] != man["model"]["weights_fingerprint"]
    assert (out / "m" / "vectors.safetensors").read_bytes() != v1
    # --force reads no cached activations
    assert list((out / "m" / "cache").glob("activations-*"))

    def no_cache(*a, **k):
        raise AssertionError("--force reused a cached activation file")

    monkeypatch.setattr(activations.ActivationStats, "load", classmethod(no_cache))
    assert [r["status"] for r in reproduce(cfg, out, progress=False, force=True)["runs"]] == ["ran"]
