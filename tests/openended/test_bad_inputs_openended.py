"""Lost work in openended/: a failing judge keeps what was done, and the resume is identical.

No catalogue case is raised in this stage; the bad-input tests' shared helpers are in tests/badinput.py.
"""

from __future__ import annotations

import pytest
import torch


pytestmark = pytest.mark.usefixtures("one_thread")


def _oe_setup():
    from conftest import TinyTokenizer, make_model
    from steerscale.core.data import Prompt
    from steerscale.core.models import model_info
    from steerscale.config import OpenEndedConfig

    model, tok = make_model("llama"), TinyTokenizer()
    info = model_info(model, name="tiny")
    torch.manual_seed(0)
    vecs = torch.randn(info.n_layers, info.hidden_size)
    cfg = OpenEndedConfig(layers=[0, 2], window_starts=[0], window_widths=[2], multipliers=[-2, 0, 2],
                          template="plain", n_generate=1, max_new_tokens=3, n_bootstrap=20, n_logodds=2)
    prompts = [Prompt(f"please do thing {i}", str(i)) for i in range(2)]
    return model, tok, info, vecs, cfg, prompts, ["neutral words here.", "more neutral text."]


def test_openended_judge_failure_keeps_the_work_and_resume_is_identical(tmp_path, monkeypatch):
    from steerscale.openended import run as openended
    from steerscale.errors import SteerscaleError

    model, tok, info, vecs, cfg, prompts, neutral = _oe_setup()
    good = lambda ps, rs: [float(len(r) % 2) for r in rs]  # noqa: E731
    kw = dict(info=info, progress=False)
    openended.run_openended(model, tok, vecs, prompts, prompts, neutral, cfg, judge=good, out_dir=tmp_path / "ref",
                            **kw)
    calls = {"judge": 0, "measure": 0}
    n_points = 1 + 3 * 2  # baseline + 3 points x 2 steered multipliers

    def failing(ps, rs):
        calls["judge"] += 1
        if calls["judge"] == n_points:  # the very last judge call
            raise SteerscaleError("judge endpoint: HTTP 503")
        return good(ps, rs)

    failing.name = good.name = "test-judge"
    with pytest.raises(SteerscaleError, match="HTTP 503"):
        openended.run_openended(model, tok, vecs, prompts, prompts, neutral, cfg, judge=failing,
                                out_dir=tmp_path / "run", **kw)
    stored = list((tmp_path / "run" / "points").glob("*.json"))
    assert len(stored) == n_points + (n_points - 1)  # every measurement, and every verdict but the last
    real = openended.refusal_logodds

    def counting(*a, **k):
        calls["measure"] += 1
        return real(*a, **k)

    from steerscale.openended import run as openended_run

    monkeypatch.setattr(openended_run, "refusal_logodds", counting)  # the run's measure, where it is looked up
    calls["judge"] = 0
    openended.run_openended(model, tok, vecs, prompts, prompts, neutral, cfg, judge=failing,
                            out_dir=tmp_path / "run", **kw)
    assert calls == {"judge": 1, "measure": 0}  # only the missing verdict
    for f in ("aggregate.csv", "logodds.csv", "generations.csv", "ce.csv"):
        assert (tmp_path / "run" / f).read_bytes() == (tmp_path / "ref" / f).read_bytes(), f
