"""Every flag of every command is generated from a config field (steerscale.config, steerscale.cli.fields), with the defaults it had
before the flags were declared as fields; a bad value is one line naming the flag; one multiplier check."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from steerscale.cli import build_parser, fields as cli_fields, main
from steerscale.cli.options import CLI_CLASSES, flag_of
from steerscale.config import OpenEndedConfig, SweepConfig, check_multipliers
from steerscale.errors import SteerscaleError
from steerscale.showcase.config import ShowcaseConfig


def _parsers():
    """('' for the top level, or the command name) -> parser."""
    ap = build_parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    return {"": ap, **sub.choices}


def _actions(p):
    return [a for a in p._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def test_every_flag_of_every_command_is_a_declared_field():
    seen = 0
    for command, p in _parsers().items():
        for a in _actions(p):
            where = f"steerscale {command} {a.option_strings or a.dest}"
            assert hasattr(a, "field"), f"{where}: declared by hand, not from a config field"
            assert a.field_class in CLI_CLASSES, f"{where}: {a.field_class.__name__} is not in CLI_CLASSES"
            assert a.field in fields(a.field_class) and a.dest == a.field.name, where
            if a.option_strings:  # the flag is the field's name (and its declared short form)
                assert a.option_strings == [flag_of(a.field.name)] + ([a.field.metadata["short"]]
                                                                      if a.field.metadata.get("short") else []), where
            assert (a.help or "") and a.field.metadata.get("help"), f"{where}: no help"
            seen += 1
    assert seen > 150  # the walk saw the flags (every command's, not one parser's)


def test_every_command_options_class_is_used_by_a_command():
    """cli/fields.py declares the options of the commands without an experiment class: each of its dataclasses is
    in CLI_CLASSES and builds at least one flag of some command (no dead declarations)."""
    from dataclasses import is_dataclass

    declared = {c for c in vars(cli_fields).values() if isinstance(c, type) and is_dataclass(c)
                and c.__module__ == cli_fields.__name__}
    assert len(declared) >= 15
    used = {a.field_class for p in _parsers().values() for a in _actions(p)}
    assert declared <= set(CLI_CLASSES), sorted(c.__name__ for c in declared - set(CLI_CLASSES))
    assert declared <= used, sorted(c.__name__ for c in declared - used)


def test_each_flag_is_checked_by_its_own_field():
    """check_options checks a parsed flag by the field FIELDS names (the first class with that name): for every
    flag of every command that field must have the same bounds as the field the flag was built from."""
    from steerscale.cli.options import FIELDS

    def checks(f):
        return {k: f.metadata.get(k) for k in ("min", "max", "pattern", "expected")} | \
            {"limit": f.metadata.get("cli") == "limit"}

    for command, p in _parsers().items():
        for a in _actions(p):
            assert checks(FIELDS[a.dest]) == checks(a.field), f"steerscale {command} {a.dest}"


# (command, argv after it, {dest: default as parsed}): the values before the flags were generated from fields
DEFAULTS = [
    ("ablation", ["--out", "o"], {
        "kl_threshold": 0.1, "prune": 0.2, "induce_threshold": 0.0, "induce_filter": "on",
        "candidate_positions": "post-instruction", "filter_prompts": "baseline-refusal",
        "prune_rule": "refusal_direction", "multipliers": "-1,1", "split_seed": 0, "seed": 0, "layers": "all",
        "layer": None, "vectors": None, "harmful": "harmful-prompts", "harmless": "harmless-prompts",
        "neutral": "neutral-text", "model": "smollm2-135m", "batch_size": 8, "template": "chat"}),
    ("orthogonalize", ["--direction", "d", "--out", "o"], {
        "direction_layer": None, "force": False, "allow_foreign_vectors": False, "dtype": "float32"}),
    ("export", ["v", "o.gguf"], {"format": "llama.cpp", "vectors": "v", "output": "o.gguf", "layers": None,
                                 "multiplier": 1.0, "model_hint": None}),
    ("import", ["in.gguf", "--n-layers", "4", "--out", "o"], {"input": "in.gguf", "n_layers": 4}),
    ("transfer", ["--vectors", "v", "--source-model", "s", "--layers", "3"], {
        "multiplier": 4.0, "map": "relative", "prompts": "harmful-prompts", "limit": 16, "json": False,
        "model": "smollm2-135m"}),
    ("generate", ["hi"], {"prompt": "hi", "layers": "13", "multipliers": "-1,1", "positions": "all",
                          "max_new_tokens": 60, "vectors": None, "ablate": None, "direction_layer": None,
                          "allow_foreign_vectors": False, "json": False}),
    ("reproduce", [], {"config": None, "out": "results/reproduce", "force": False, "print_config": False,
                       "only": None, "quiet": False, "debug": False}),
    ("sweep", ["--out", "o"], {"data": "refusal-test", "limit": None, "shard": None, "shards": None,
                               "backend": "local", "multipliers": "-1,0,1", "layers": "all"}),
    ("train", ["--out", "o.safetensors"], {"data": None, "cache_dir": None, "train_data": "refusal-train"}),
    ("openended", ["--out", "o"], {"phrases": None, "multipliers": "-4,-2,0,2,4", "max_new_tokens": 40}),
    ("info", [], {"model_positional": None, "json": False}),
    ("similarity", ["a", "b", "--out", "o"], {"vectors": ["a", "b"], "normalize_across": False}),
    ("data", ["list"], {"action": "list", "json": False}),
    ("merge", ["f"], {"folder": "f"}),
    ("report", ["f"], {"folder": "f"}),
]


@pytest.mark.parametrize("command,argv,expected", DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_defaults_are_the_values_before(command, argv, expected):
    args = build_parser().parse_args([command, *argv])
    assert {k: getattr(args, k) for k in expected} == expected


def test_required_flags_stay_required(capsys):
    for argv in (["transfer", "--vectors", "v", "--source-model", "s"], ["orthogonalize", "--out", "o"],
                 ["import", "x.gguf", "--out", "o"], ["ablation"]):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        assert e.value.code == 2
    err = capsys.readouterr().err
    for flag in ("--layers", "--direction", "--n-layers", "--out/-o"):
        assert f"required: {flag}" in err


@pytest.mark.parametrize("argv,message", [
    (["ablation", "--split-seed", "-1", "--out", "{tmp}/a"], "--split-seed -1: expected an integer 0..4294967295"),
    (["ablation", "--seed", "-3", "--out", "{tmp}/a"], "--seed -3: expected an integer >= 0 and < 2^32"),
    (["ablation", "--multipliers=1,1e31", "--out", "{tmp}/a"], "--multipliers value 1e+31: expected a number between"),
    (["ablation", "--layers", "3-x", "--out", "{tmp}/a"], "--layers '3-x': expected 'all', a layer"),
    (["sweep", "--shards", "0", "--out", "{tmp}/s"], "--shards 0: expected a positive number"),
    (["generate", "--vectors", "v", "--max-new-tokens", "0", "hi"], "--max-new-tokens 0: expected a positive number "
                                                                   "of tokens"),
    (["transfer", "--vectors", "v", "--source-model", "s", "--layers", "1", "--limit", "0"], "--limit 0"),
])
def test_a_bad_value_is_one_line_naming_the_flag(tmp_path, capsys, monkeypatch, argv, message):
    import steerscale.cli.common as common

    def no_model(args):  # every one of these is refused before a model is loaded
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(common, "LOADER", no_model)
    rc = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"steerscale {argv[0]}: error: ") and message in err, err


# ---------------------------------------------------------------------------------------------- multipliers


def test_check_multipliers_keeps_order_and_counts_repeats_once():
    assert check_multipliers([1, -0.0, -1, 1.0, 0]) == [1.0, 0.0, -1.0]
    assert [str(m) for m in check_multipliers([-0.0])] == ["0.0"]  # -0 is 0
    for bad, message in (([], "m: expected at least one value"), ("1,2", "m '1,2': expected a list of numbers"),
                         ([1, True], "m [1, True]: expected a list of numbers"),
                         ([0, float("nan")], "m value nan: expected a finite number"),
                         ([2e30], "m value 2e+30: expected a number between")):
        with pytest.raises(SteerscaleError, match="^" + message.replace("[", r"\[").replace("]", r"\]")
                           .replace("+", r"\+")):
            check_multipliers(bad, "m")


def test_every_multiplier_list_uses_the_one_check():
    """Sweep keeps the order given (its tables list multipliers so); open-ended and the dose panel sort."""
    assert SweepConfig(multipliers=[1, 0, -1, 1]).validate(4).multipliers == [1.0, 0.0, -1.0]
    assert OpenEndedConfig(multipliers=[4, 0, -4, 4]).validate().multipliers == [-4.0, 0.0, 4.0]
    assert ShowcaseConfig(dose_multipliers=[0.5, -0.5, 0.5]).validate().dose_multipliers == [-0.5, 0.0, 0.5]
    assert ShowcaseConfig(dose_multipliers=[]).validate().dose_multipliers == [0.0]  # the baseline alone
    assert ShowcaseConfig(ablation_multipliers=[2, -2]).validate().ablation_multipliers == [2, -2]  # as written
    for cfg, message in ((SweepConfig(multipliers=[0, 1e31]), "multipliers value 1e+31"),
                         (OpenEndedConfig(multipliers=[]), "multipliers: expected at least one value"),
                         (ShowcaseConfig(ablation_multipliers=[1, "x"]), "showcase ablation_multipliers"),
                         (ShowcaseConfig(dose_multipliers=[float("inf")]), "showcase dose_multipliers value inf")):
        with pytest.raises(SteerscaleError, match=message.replace("+", r"\+")):
            cfg.validate(4) if isinstance(cfg, SweepConfig) else cfg.validate()


# ---------------------------------------------------------------------------------------------- showcase


def test_showcase_fields_are_config_fields_with_one_check():
    """ShowcaseConfig's fields carry config's metadata (help; shared options the same bounds as the sweep's)."""
    from steerscale.config import OPTIONS

    by_name = {f.name: f for f in fields(ShowcaseConfig)}
    assert all(f.metadata.get("help") for f in by_name.values())
    for name in ("batch_size", "seed", "n_bootstrap", "positions", "template"):
        assert {k: by_name[name].metadata.get(k) for k in ("min", "max", "choices")} == \
            {k: OPTIONS[name].get(k) for k in ("min", "max", "choices")}
    for kw, message in (({"dose_controls": -1}, "showcase dose_controls -1: expected an integer >= 0"),
                        ({"batch_size": 0}, "showcase batch_size 0: expected an integer >= 1"),
                        ({"template": "alpaca"}, "showcase template 'alpaca': expected one of"),
                        ({"val_fraction": 1}, "showcase val_fraction 1: expected a number between 0 and 1"),
                        ({"ablation_layer": -2}, "showcase ablation_layer -2: expected an integer >= 0")):
        with pytest.raises(SteerscaleError, match=message):
            ShowcaseConfig(**kw).validate()
    assert ShowcaseConfig().validate().ablation_kl_threshold == 0.5
