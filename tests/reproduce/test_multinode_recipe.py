"""The multi-node recipe of docs/scaling_out.md on tiny models: each "node" runs one model with --only, then one
`steerscale report` gathers both folders without recomputing, and names every folder it ignored."""

import logging

import pytest

from steerscale.errors import SteerscaleError
from builders import tiny_config


def test_two_nodes_then_one_report(tmp_path, tiny_loader, caplog):  # noqa: F811
    from steerscale.cli import main
    from steerscale.reproduce.run import reproduce
    from steerscale.reproduce.report import render

    cfg = tiny_config(tmp_path)
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
    from steerscale.reproduce.run import reproduce

    with pytest.raises(SteerscaleError, match="--only 'nope': no model of that name in the config .*tiny a, tiny-b"):
        reproduce(tiny_config(tmp_path), tmp_path / "out", progress=False, only="nope")
    assert tiny_loader == []


def test_progress_stage_lines_plain_on_non_tty_and_quiet(tmp_path, tiny_loader, caplog, capsys):  # noqa: F811
    """reproduce logs a line per stage with "model k of N"; stderr that is not a terminal gets no carriage
    returns or escape codes (no tqdm bars); --quiet leaves only the results paths on stdout and no info lines."""
    from steerscale.cli import main

    cfg = tiny_config(tmp_path)
    with caplog.at_level(logging.INFO, logger="steerscale.reproduce"):
        assert main(["reproduce", "--config", str(cfg), "--out", str(tmp_path / "a")]) == 0
    msgs = [r.getMessage() for r in caplog.records]
    for stage in ("model 1 of 2: tiny a: training vectors, then the A/B sweep",
                  "model 2 of 2: tiny-b: training vectors, then the A/B sweep", "report: analysing 2"):
        assert any(stage in m for m in msgs), stage
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        assert main(["--quiet", "reproduce", "--config", str(cfg), "--out", str(tmp_path / "b")]) == 0
    out, err = capsys.readouterr()
    assert out.strip().splitlines() == [f"wrote {tmp_path / 'b' / 'report.html'} and {tmp_path / 'b' / 'report.md'}"]
    assert "\r" not in err and "\x1b" not in err
    assert not [r for r in caplog.records if r.name == "steerscale.reproduce" and r.levelno < logging.WARNING]
