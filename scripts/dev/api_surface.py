"""Print the public surface as JSON: every name `steerscale/__init__.py` exports (with the parameters of callables: names, kinds, defaults
and the fields of dataclasses) and every CLI command with each option's flags, default, choices, nargs and type.

    PYTHONPATH=src python scripts/dev/api_surface.py > surface.json

scripts/dev/golden.sh dumps it on both commits and compares: a behaviour-preserving change keeps it identical.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json


def api() -> dict:
    import steerscale

    out = {}
    for name in sorted(getattr(steerscale, "__all__", [n for n in dir(steerscale) if not n.startswith("_")])):
        obj = getattr(steerscale, name)
        entry: dict = {"kind": type(obj).__name__}
        if dataclasses.is_dataclass(obj) and isinstance(obj, type):
            entry["fields"] = [(f.name, repr(f.default) if f.default is not dataclasses.MISSING else None)
                               for f in dataclasses.fields(obj)]
        elif callable(obj):
            try:
                # names, kinds and defaults; annotations are left out (adding types changes no behaviour)
                entry["parameters"] = [(p.name, p.kind.name, None if p.default is p.empty else repr(p.default))
                                       for p in inspect.signature(obj).parameters.values()]
            except (TypeError, ValueError):
                pass
        out[name] = entry
    return out


def _actions(parser: argparse.ArgumentParser, prefix: str, out: dict) -> None:
    opts = []
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                _actions(sub, f"{prefix} {name}".strip(), out)
            continue
        if isinstance(a, argparse._HelpAction):
            continue
        opts.append({"flags": list(a.option_strings) or [a.dest], "dest": a.dest, "default": repr(a.default),
                     "choices": list(a.choices) if a.choices else None, "nargs": a.nargs,
                     "type": getattr(a.type, "__name__", repr(a.type)) if a.type else None,
                     "action": type(a).__name__, "required": a.required})
    out[prefix or "steerscale"] = sorted(opts, key=lambda o: o["flags"])


def cli() -> dict:
    from steerscale.cli import build_parser

    out: dict = {}
    _actions(build_parser(), "", out)
    return out


if __name__ == "__main__":
    print(json.dumps({"api": api(), "cli": cli()}, indent=1, sort_keys=True))
