"""Bad inputs reproduce/ refuses (its TOML, its folder), remote code never run, and reproduce's resume.

The catalogue's cases are those whose error this stage's code raises (the innermost steerscale frame); each exits 2
with one line naming the file/field/value, and each has a row in docs/errors.md naming this file. The shared inputs
and builders are in tests/badinput.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from steerscale import cli
from tinydir import save_tiny_model, write_dataset
from badinput import SRC, base, catalogue_tests, run_cli  # noqa: F401 (base: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


# (id, build(ctx) -> argv, expected fragment of the one-line message)
CATALOGUE = [
    ("reproduce-only-unknown", lambda c: ["reproduce", "--out", str(c.tmp / "r"), "--only", "nope"],
     "--only 'nope': no model of that name in the config (expected one of"),
    ("report-corrupt-config", lambda c: ["report", c.report_folder(
        lambda o: (o / "reproduce_config.json").write_text("{"))],
     "reproduce_config.json: corrupt or not written by 'steerscale reproduce' (JSONDecodeError"),
    ("report-config-wrong-shape", lambda c: ["report", c.report_folder(
        lambda o: (o / "reproduce_config.json").write_text('{"path": 1}'))],
     "reproduce_config.json: corrupt or not written by 'steerscale reproduce' (KeyError"),
    ("report-corrupt-manifest", lambda c: ["report", c.report_folder(
        lambda o: (o / "m" / "manifest.json").write_text("[1, 2"))], "manifest.json: corrupt (JSONDecodeError"),
    ("toml-huge-integer", lambda c: c.toml("[run]\nseed = 1" + "0" * 5000 + "\n"), "unreadable TOML value"),
    ("toml-deep-arrays", lambda c: c.toml("x = " + "[" * 50000 + "]" * 50000 + "\n"), "nested too deeply"),
    ("toml-not-utf8", lambda c: ["reproduce", "--config", c.file("c.toml", raw=b"[run]\nseed = \xff\xfe\n"),
                                 "--out", str(c.tmp / "rep")], "not UTF-8 text (byte 13"),
    # the [[models]] table's own checks (reproduce/config.py ModelSection)
    ("toml-spec-empty", lambda c: c.toml('[[models]]\nspec = ""\n'), "spec '': expected a non-empty string"),
    ("toml-duplicate-test-sets", lambda c: c.toml('[data]\ntest_sets = ["refusal-test-ood", "refusal-test-ood"]\n'),
     "test_sets: 'refusal-test-ood' is listed twice"),
]


test_catalogue, test_catalogue_is_documented = catalogue_tests(CATALOGUE, __file__)


def _reproduce_setup(tmp_path) -> Path:
    save_tiny_model(tmp_path / "model", layers=4, hidden=64)
    write_dataset(tmp_path / "train.json", 8)
    write_dataset(tmp_path / "test.json", 16)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[run]\nn_bootstrap = 20\n[data]\ntrain = "train.json"\ntest = "test.json"\n'
                   '[sweep]\ntemplate = "plain"\nmultipliers = [-2.0, -1.0, 0.0, 1.0, 2.0]\nengine = "naive"\n'
                   'batch_size = 4\n[[models]]\nspec = "model"\nname = "tiny"\n')
    return cfg


def test_reproduce_resumes_after_kill_9_with_identical_tables(tmp_path):
    import signal
    import time

    cfg = _reproduce_setup(tmp_path)
    ref = tmp_path / "ref"
    r = run_cli("reproduce", "--config", cfg, "--out", ref)
    assert r.returncode == 0, r.stderr
    total = 4 * 5
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=SRC)
    proc = subprocess.Popen([sys.executable, "-m", "steerscale.cli", "reproduce", "--config", str(cfg), "--out",
                             str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pts = out / "tiny" / "points"
    t_end = time.time() + 120
    while time.time() < t_end and proc.poll() is None and len(list(pts.glob("*__L*.json"))) < 0.75 * total:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(pts.glob("*__L*.json")))
    assert 0.5 * total <= done < total
    r = run_cli("reproduce", "--config", cfg, "--out", out)
    assert r.returncode == 0, r.stderr
    man = json.loads((out / "tiny" / "manifest.json").read_text())
    steered_missing = len([1 for L in range(4) for m in (-2.0, -1.0, 1.0, 2.0)
                           if not (pts / f"tiny__L{L:04d}__m{m!r}.json").exists()])
    assert man["resume"]["points_computed_now"] <= total - done  # only what was missing
    assert steered_missing == 0
    for f in ("items.csv", "aggregate.csv"):
        assert (out / "tiny" / f).read_bytes() == (ref / "tiny" / f).read_bytes(), f


def _canary_model(folder: Path, canary: Path) -> Path:
    """A model folder whose config.json maps the Auto classes to a local module that writes `canary` on import."""
    save_tiny_model(folder, layers=2, hidden=32)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "evil.py").write_text(f"open({str(canary)!r}, 'w').write('ran')\n"
                                    "from transformers import LlamaConfig as EvilConfig\n"
                                    "from transformers import LlamaForCausalLM as EvilModel\n")
    return folder


def test_trust_remote_code_string_never_imports_model_code(tmp_path, capsys):
    canary = tmp_path / "CANARY"
    model = _canary_model(tmp_path / "evil_model", canary)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[[models]]\nspec = "{model}"\ntrust_remote_code = "false"\n')
    out = tmp_path / "rep"
    assert cli.main(["reproduce", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "trust_remote_code 'false': expected true or false" in err and str(cfg) in err
    assert not canary.exists()
    recorded = [p for p in tmp_path.rglob("*.json") if "trust_remote_code" in p.read_text()]
    assert not recorded  # nothing records trust_remote_code (let alone true)
    # the boolean false really keeps the module out: the model loads with the built-in class, canary unwritten
    from steerscale.core.models import load_model

    load_model(str(model), trust_remote_code=False)
    assert not canary.exists()


def test_reproduce_checks_generation_fits_context(base, tmp_path, capsys):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps([{"prompt": f"How do I do {i}?"} for i in range(4)]))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ntrain = "{base["data"]}"\ntest = "{base["data"]}"\n'
                   f'[openended]\nharmful = "{prompts}"\nharmless = "{prompts}"\nn_neutral = 0\n'
                   f'n_generate = 1\nmax_new_tokens = 100000\n'
                   f'[[models]]\nspec = "{base["model"]}"\n')
    assert cli.main(["reproduce", "--config", str(cfg), "--out", str(tmp_path / "rep")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "+ 100000 to generate exceed this model's context of 512 tokens" in last
