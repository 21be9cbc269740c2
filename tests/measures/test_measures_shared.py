"""The shared homes of issue 12: the one bootstrap (stats), the manifest builder and save (results), safetensors
I/O (tensorio), the one relative-depth layer map, and the old import paths kept as aliases."""

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from steerscale.io import results, tensorio
from steerscale import stats
from steerscale.errors import SteerscaleError
from steerscale.measures.capability import CrossEntropy
from steerscale.core.vectors import SteeringVectors, map_layers

# ---------------------------------------------------------------- stats


def _reference_resamples(n, n_boot, seed):
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def test_ratio_ci_is_the_ratio_of_resampled_sums():
    rng = np.random.default_rng(5)
    num, den = rng.uniform(10, 50, 7), rng.integers(5, 40, 7).astype(float)
    point, low, high = stats.ratio_ci(num, den, 300, 3)
    idx = _reference_resamples(7, 300, 3)
    vals = [num[i].sum() / den[i].sum() for i in idx]
    assert point == pytest.approx(num.sum() / den.sum(), rel=1e-15)
    assert (low, high) == pytest.approx((np.quantile(vals, 0.025), np.quantile(vals, 0.975)), rel=1e-12)
    # paired: against itself the difference is exactly zero in every resample
    assert stats.ratio_ci(num, den, 300, 3, base=(num, den)) == (0.0, 0.0, 0.0)
    # a shifted base moves the paired difference by the same amount
    d = stats.ratio_ci(num, den, 300, 3, base=(num - den, den))
    assert d == pytest.approx((1.0, 1.0, 1.0))
    assert stats.ratio_ci(num[:1], den[:1], 300, 3) == (num[0] / den[0],) * 3


def test_cross_entropy_ci_uses_ratio_ci():
    ce = CrossEntropy(np.array([3.0, 8.0, 2.5, 9.0]), np.array([2.0, 4.0, 5.0, 3.0]))
    base = CrossEntropy(np.array([2.0, 7.0, 2.0, 4.0]), np.array([2.0, 4.0, 5.0, 3.0]))
    assert ce.ci(200, 1) == stats.ratio_ci(ce.nll_sum, ce.n_tokens, 200, 1)
    assert ce.ci(200, 1, base=base) == stats.ratio_ci(ce.nll_sum, ce.n_tokens, 200, 1,
                                                       base=(base.nll_sum, base.n_tokens))
    assert ce.ci(200, 1)[0] == pytest.approx(ce.mean)


def test_nan_mean_ci_and_diff_ci():
    x = [1.0, float("nan"), 3.0, 4.0, float("nan"), 0.5]
    assert stats.nan_mean_ci(x, 100, 2) == stats.mean_ci([1.0, 3.0, 4.0, 0.5], 100, 2)
    assert all(math.isnan(v) for v in stats.nan_mean_ci([float("nan")], 100, 2))
    a, b = np.array([1.0, 2.0, 4.0, float("nan")]), np.array([0.0, 1.0, 1.5])
    low, high = stats.diff_ci(a, b, 400, 7)
    aa = a[~np.isnan(a)]
    ma = aa[_reference_resamples(3, 400, 7)].mean(1)
    mb = b[_reference_resamples(3, 400, 8)].mean(1)  # b resampled on its own, with seed + 1
    assert (low, high) == pytest.approx((np.quantile(ma - mb, 0.025), np.quantile(ma - mb, 0.975)), rel=1e-12)
    assert low < np.nanmean(a) - b.mean() < high
    assert all(math.isnan(v) for v in stats.diff_ci([], b, 10, 0))


# ---------------------------------------------------------------- results


@dataclass
class _Cfg:
    layers: list
    seed: int = 0


class _Info:
    def to_dict(self):
        return {"name": "tiny", "n_layers": 3}


def test_manifest_head_and_section_order():
    m = results.manifest("thing", _Cfg([1, 2]), _Info(), 12.34567, points=[1], timings_s={"total": 1.0})
    assert list(m) == ["kind", "created_unix", "command", "git_revision", "versions", "model", "config", "points",
                       "timings_s"]
    assert m["kind"] == "thing" and m["created_unix"] == 12.346
    assert m["config"] == {"layers": [1, 2], "seed": 0} and m["model"] == {"name": "tiny", "n_layers": 3}
    assert set(m["versions"]) >= {"steerscale", "torch", "numpy"}
    same = results.manifest("thing", {"a": 1}, {"name": "x"}, 0.0)  # dicts pass through as given
    assert same["config"] == {"a": 1} and same["model"] == {"name": "x"}


def test_save_tables_writes_in_order_and_manifest_last(tmp_path, monkeypatch):
    order = []
    real_csv, real_json = results.write_csv, results.write_json
    monkeypatch.setattr(results, "write_csv", lambda p, *a: (order.append(p.name), real_csv(p, *a)))
    monkeypatch.setattr(results, "write_json", lambda p, *a: (order.append(p.name), real_json(p, *a)))
    rows = [{"a": 1.0, "b": "=cmd"}, {"a": 2.5}]
    out = results.save_tables(tmp_path / "r", [("t.csv", rows, ["a", "b"]), ("t.json", rows, None)], {"kind": "k"})
    assert order == ["t.csv", "t.json", "manifest.json"]
    assert (out / "t.csv").read_text() == "a,b\n1,'=cmd\n2.5,\n"
    assert json.loads((out / "t.json").read_text()) == rows
    assert json.loads((out / "manifest.json").read_text()) == {"kind": "k"}


# ---------------------------------------------------------------- tensorio


def test_tensorio_roundtrip_and_errors(tmp_path):
    t = torch.randn(3, 4)
    p = tensorio.save_with_meta(tmp_path / "v.safetensors", {"vectors": t}, {"model": "m", "n": 2})
    tensors, meta = tensorio.read_safetensors(p)
    assert torch.equal(tensors["vectors"], t) and tensorio.json_meta(p, meta) == {"model": "m", "n": 2}
    assert [f.name for f in tmp_path.iterdir()] == ["v.safetensors"]  # the temporary file was renamed away
    assert tensorio.json_meta(p, {}) == {}
    with pytest.raises(SteerscaleError, match="metadata is not valid JSON"):
        tensorio.json_meta(p, {"steerscale": "{oops"})
    with pytest.raises(SteerscaleError, match="must be a JSON object"):
        tensorio.json_meta(p, {"steerscale": "[1]"})
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(p.read_bytes()[:40])
    with pytest.raises(SteerscaleError, match="not a readable safetensors file"):
        tensorio.read_safetensors(bad)
    with pytest.raises(SteerscaleError, match="is a directory"):
        tensorio.read_safetensors(tmp_path)
    tensorio.atomic_save({"x": torch.tensor([1.0, float("nan")])}, tmp_path / "nan.safetensors", {})
    with pytest.raises(SteerscaleError, match="tensor 'x' contains NaN or Inf"):
        tensorio.read_safetensors(tmp_path / "nan.safetensors")
    # SteeringVectors go through tensorio: the same bytes as a direct save_with_meta
    v = SteeringVectors(t, {"model": "m"})
    v.save(tmp_path / "a.safetensors")
    tensorio.save_with_meta(tmp_path / "b.safetensors", {"vectors": t.contiguous()}, {"model": "m"})
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


# ---------------------------------------------------------------- one layer map, aliases


def test_transfer_uses_the_one_relative_depth_map():
    """map_layers with the roles swapped is exactly the source -> target formula transfer_effect used inline."""
    for ns in range(2, 13):
        for nt in range(1, 13):
            inline = [int(math.floor(l * (nt - 1) / max(ns - 1, 1) + 0.5)) for l in range(ns)]
            assert map_layers(nt, ns) == inline, (ns, nt)
