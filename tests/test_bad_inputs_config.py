"""Bad inputs the config field table (config.py) refuses, from flags and from reproduce TOML.

The catalogue's cases are those whose error this stage's code raises (the innermost steerscale frame); each exits 2
with one line naming the file/field/value, and each has a row in docs/errors.md naming this file. The shared inputs
and builders are in tests/badinput.py.
"""

from __future__ import annotations

import pytest

from badinput import base, catalogue_tests  # noqa: F401 (base: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


# (id, build(ctx) -> argv, expected fragment of the one-line message)
CATALOGUE = [
    ("layers-out-of-range", lambda c: c.sweep("--layers", "0,99"), "layers [99]: out of range, this model has layers 0..1"),
    ("engine-unknown", lambda c: c.sweep("--engine", "warp"), "engine 'warp': expected one of"),
    ("layers-long-range-short-message", lambda c: c.sweep("--layers", "0-9999"),
     "layers [2, 3, 4, 5, ..., 9999] (9998 layers): out of range, this model has layers 0..1"),
    ("openended-windows-past-the-model", lambda c: c.openended()[:7] + c.openended()[9:] + [
        "--window-starts", "99999999999", "--window-widths", "2"], "no layers or windows to sweep"),
    ("transfer-multiplier-inf", lambda c: c.transfer("--multiplier", "inf"), "--multiplier inf: expected a finite"),
    ("layers-negative-out-of-range", lambda c: c.sweep("--layers", "-3"),
     "layers [-3]: out of range, this model has layers 0..1"),
    ("toml-bool-as-string", lambda c: c.model_toml('trust_remote_code = "false"'),
     "[[models]] #1: trust_remote_code 'false': expected true or false"),
    ("toml-import-bool-as-string", lambda c: c.toml('[[models]]\nspec = "x"\n[[imports]]\ntable = "t.csv"\n'
                                                    'include_in_fit = "false"\n'),
     "[[imports]] #1: include_in_fit 'false': expected true or false"),
    ("toml-spec-not-a-string", lambda c: c.toml("[[models]]\nspec = 5\n"), "[[models]] #1: spec 5: expected a string"),
    ("toml-device", lambda c: c.model_toml('device = "tpu:7"'),
     "device 'tpu:7': expected one of cpu, cuda, cuda:N, mps, auto"),
    ("toml-dtype", lambda c: c.model_toml('dtype = "int4"'), "dtype 'int4': expected one of float32"),
    ("toml-n-bootstrap-huge", lambda c: c.toml("[run]\nn_bootstrap = 1000000000\n"),
     "[run] n_bootstrap 1000000000: expected an integer <= 1e+06"),
    ("toml-max-new-tokens-huge", lambda c: c.toml("[openended]\nmax_new_tokens = 1000000000\n"),
     "max_new_tokens 1000000000: expected an integer <= 1e+06"),
    ("toml-seed-huge", lambda c: c.toml("[run]\nseed = 100000000000\n"), "seed 100000000000: expected an integer <="),
    ("toml-multiplier-huge", lambda c: c.toml("[sweep]\nmultipliers = [0, 1e31]\n"),
     "[sweep]: multipliers value 1e+31: expected a number between -1e+30 and 1e+30"),
    ("export-multiplier-huge", lambda c: c.export("--multiplier", "1e39"),
     "export --multiplier 1e+39: expected a number between"),
    ("generate-multiplier-huge", lambda c: c.generate("--vectors", str(c.b["direction"]), "--multipliers", "1e31"),
     "--multipliers value 1e+31: expected a number between"),
    ("ablation-multiplier-huge", lambda c: ["ablation", "--model", str(c.b["model"]), "--multipliers=1e31",
                                            "--out", str(c.tmp / "abl")],
     "--multipliers value 1e+31: expected a number between"),
    ("toml-showcase-multiplier-huge", lambda c: c.toml("[showcase]\ndose_multipliers = [0, 1e31]\n"),
     "showcase dose_multipliers value 1e+31: expected a number between -1e+30 and 1e+30"),
]


test_catalogue, test_catalogue_is_documented = catalogue_tests(CATALOGUE, __file__)
