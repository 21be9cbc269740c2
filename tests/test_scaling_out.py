"""The multi-node recipe of docs/scaling_out.md on tiny models: each "node" runs one model with --only, then one
`steerscale report` gathers both folders without recomputing, and names every folder it ignored."""

import logging

import pytest

from steerscale.errors import SteerscaleError
from test_report import _tiny_config, tiny_loader  # noqa: F401


def test_two_nodes_then_one_report(tmp_path, tiny_loader, caplog):  # noqa: F811
    from steerscale.cli import main
    from steerscale.reproduce import render, reproduce

    cfg = _tiny_config(tmp_path)
    out = tmp_path / "out"
    # node 1 and node 2 of the SLURM array, each one model, no report
    s1 = reproduce(cfg, out, progress=False, only="tiny a")
    assert [r["status"] for r in s1["runs"]] == ["ran"] and tiny_loader == ["tiny-a"]
    assert not (out / "report.html").exists()
    assert main(["reproduce", "--config", str(cfg), "--out", str(out), "--only", "tiny-b"]) == 0
    assert tiny_loader == ["tiny-a", "tiny-b"] and not (out / "report.html").exists()
    (out / "stray").mkdir()
    # the gathering step: both models in one report, nothing loaded again, the stray folder named
    with caplog.at_level(logging.WARNING):
        s = render(out)
    assert len(tiny_loader) == 2 and (out / "report.html").is_file()
    assert len(s["models"]) == 2 and len({m["model"] for m in s["models"]}) == 2
    assert any("stray: ignored (not a model of this config" in r.getMessage() for r in caplog.records)
    # a later full-config reproduce reuses both folders
    s2 = reproduce(cfg, out, progress=False)
    assert [r["status"] for r in s2["runs"]] == ["reused", "reused"] and len(tiny_loader) == 2


def test_only_names_an_unknown_model(tmp_path, tiny_loader):  # noqa: F811
    from steerscale.reproduce import reproduce

    with pytest.raises(SteerscaleError, match="--only 'nope': no model of that name in the config .*tiny a, tiny-b"):
        reproduce(_tiny_config(tmp_path), tmp_path / "out", progress=False, only="nope")
    assert tiny_loader == []
