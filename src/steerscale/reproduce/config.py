"""Read a `steerscale reproduce` TOML file into a ReproduceConfig (steerscale.config).

Each table is read into its section class (``[run]`` RunSection, ``[data]`` DataSection, ``[sweep]`` and every
``[[models]]`` entry's overrides SweepSection, ``[openended]`` OpenEndedSection) by ``config.from_section``:
defaults, unknown keys, wrong types and bounds are the classes' business, and every error is one line naming
the file, the section and the key. The [run] protocol preset fills [sweep] keys the file leaves out. Relative
paths (data files, model folders, imported tables) are read relative to the config file's folder.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, fields
from importlib import resources
from pathlib import Path

from ..config import (
    IMPORT_KEYS, MODEL_KEYS, PROTOCOL_PRESETS, DataSection, ImportSection, ModelSection, ModelSpec, OpenEndedSection,
    ReproduceConfig, RunSection, SweepSection, from_section,
)
from ..errors import SteerscaleError

SECTION_NAMES = ("run", "data", "sweep", "openended", "showcase", "models", "imports")


def default_config_path() -> Path:
    return Path(str(resources.files("steerscale") / "configs" / "default.toml"))


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return s or "model"


def _resolve(base: Path, value: str) -> str:
    """A relative path in the config is read relative to the config file's folder when something is there;
    anything else (built-in names, hub ids, absolute paths) is kept as written."""
    p = Path(value).expanduser()
    if not p.is_absolute() and (base / p).exists():
        return str((base / p).resolve())
    return str(p) if value.startswith("~") else value


def read_toml(path: Path) -> dict:
    """A TOML file as a dict; a missing or unreadable file, non-UTF-8 bytes, invalid TOML, nesting too deep for
    the parser and integers too long to convert are each a one-line error naming the file."""
    from ..io.guards import read_input_bytes

    if not path.exists() and not path.is_symlink():
        raise SteerscaleError(f"{path}: no such config file")
    data = read_input_bytes(path, "a TOML config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SteerscaleError(f"{path}: not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); save the "
                              f"config as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SteerscaleError(f"{path}: invalid TOML ({e})") from None
    except RecursionError:
        raise SteerscaleError(f"{path}: arrays or tables nested too deeply to read; expected a flat config") from None
    except ValueError as e:  # an integer of more than 4300 digits
        raise SteerscaleError(f"{path}: unreadable TOML value ({str(e).split(':')[0][:120]})") from None


def load_config(path=None) -> ReproduceConfig:
    """Read and validate a reproduce config (the bundled default when `path` is None)."""
    path = Path(path) if path is not None else default_config_path()
    raw = read_toml(path)
    for k in raw:
        if k not in SECTION_NAMES:
            raise SteerscaleError(f"{path}: unknown section [{k}] (known: {', '.join(sorted(SECTION_NAMES))})")
    run = asdict(from_section(RunSection, raw.get("run", {}), f"{path}: [run]", lambda k: f"{path}: [run] {k}"))
    data = asdict(from_section(DataSection, raw.get("data", {}), f"{path}: [data]", lambda k: f"{path}: [data] {k}"))
    preset = PROTOCOL_PRESETS[run["protocol"]]
    sweep_raw = raw.get("sweep", {})
    if isinstance(sweep_raw, dict):  # the preset's settings, under the user's own [sweep] keys
        sweep_raw = {**{k: v for k, v in preset["sweep"].items() if k not in sweep_raw}, **sweep_raw}
    sweep = asdict(from_section(SweepSection, sweep_raw, f"{path}: [sweep]"))
    base = path.resolve().parent
    for k in ("train", "test"):
        data[k] = _resolve(base, data[k])
    data["test_sets"] = [_resolve(base, t) for t in data["test_sets"]]
    dup = sorted({t for t in data["test_sets"] if data["test_sets"].count(t) > 1})
    if dup:  # two spellings of one file ("a.json", "./a.json") would sweep it twice into one folder
        raise SteerscaleError(f"{path}: [data] test_sets: {dup[0]!r} is listed twice; list each test set once")
    openended = None
    if "openended" in raw:
        openended = asdict(from_section(OpenEndedSection, raw["openended"], f"{path}: [openended]"))
        for k in ("harmful", "harmless", "neutral"):
            openended[k] = _resolve(base, openended[k])
    showcase = None
    if "showcase" in raw:
        showcase = read_showcase(raw["showcase"], f"{path}: [showcase]")
        for k in ("harmful", "harmless", "neutral"):
            if k in showcase:
                showcase[k] = _resolve(base, showcase[k])
    models_raw = raw.get("models", [])
    if not isinstance(models_raw, list) or not models_raw:
        raise SteerscaleError(f"{path}: no [[models]] listed; add at least one, e.g. spec = \"smollm2-135m\"")
    sweep_keys = [f.name for f in fields(SweepSection)]
    models, names = [], set()
    for i, m in enumerate(models_raw, 1):
        where = f"{path}: [[models]] #{i}"
        if not isinstance(m, dict) or "spec" not in m:
            raise SteerscaleError(f"{where}: missing key 'spec' (a hub id, model directory, .gguf file or smollm2-135m)")
        for k in m:
            if k not in MODEL_KEYS and k not in sweep_keys:
                raise SteerscaleError(f"{where}: unknown key {k!r} (known: {', '.join(sorted(MODEL_KEYS))}, "
                                      f"or any [sweep] key)")
        own = from_section(ModelSection, {k: v for k, v in m.items() if k in MODEL_KEYS}, where,
                           lambda k: f"{where}: {k}")  # typed: trust_remote_code = "false" is refused
        spec = _resolve(base, own.spec)
        name = own.name or (Path(spec).stem if spec.endswith(".gguf") or Path(spec).exists() else spec)
        if slug(name) in names:
            raise SteerscaleError(f"{where}: name {name!r} is used twice; give each model a distinct 'name'")
        names.add(slug(name))
        eff = asdict(from_section(SweepSection, {**sweep, **{k: v for k, v in m.items() if k in sweep_keys}}, where))
        label = run["protocol"] if all(eff[k] == v for k, v in preset["sweep"].items()) else "custom"
        models.append(ModelSpec(spec, name, own.dtype, own.device, own.trust_remote_code, eff, label))
    imports = []
    imports_raw = raw.get("imports", [])
    if not isinstance(imports_raw, list):
        raise SteerscaleError(f"{path}: [[imports]] must be an array of tables ([[imports]] entries)")
    for i, imp in enumerate(imports_raw, 1):
        where = f"{path}: [[imports]] #{i}"
        if not isinstance(imp, dict) or "table" not in imp:
            raise SteerscaleError(f"{where}: missing key 'table' (a CSV/JSON file or a built-in table name)")
        for k in imp:
            if k not in IMPORT_KEYS:
                raise SteerscaleError(f"{where}: unknown key {k!r} (known: {', '.join(sorted(IMPORT_KEYS))})")
        own = from_section(ImportSection, imp, where, lambda k: f"{where}: {k}")  # include_in_fit must be a bool
        imports.append({"table": _resolve(base, own.table), "include_in_fit": own.include_in_fit})
    return ReproduceConfig(str(path), run, data, sweep, models, imports, openended, showcase)


def read_showcase(table, where: str) -> dict:
    """The [showcase] table: the panel keys of `showcase.ShowcaseConfig` as written (checked by building one).
    Prompt format, positions, batch size, split and bootstrap come from the model's [sweep] and [run] settings,
    so they are refused here."""
    from dataclasses import fields as _fields

    from ..showcase.config import FROM_RUN, ShowcaseConfig

    if not isinstance(table, dict):
        raise SteerscaleError(f"{where} must be a table")
    known = [f.name for f in _fields(ShowcaseConfig) if f.name not in FROM_RUN]
    for k in table:
        if k in FROM_RUN:
            raise SteerscaleError(f"{where} key {k!r}: set it in [sweep] or [run]; the showcase uses the model's own")
        if k not in known:
            raise SteerscaleError(f"{where} unknown key {k!r} (known: {', '.join(known)})")
    ShowcaseConfig.from_dict(dict(table), where)
    return dict(table)


def peak_selection(cfg) -> str:
    """How the config's protocol chooses peak layers: "held-out" (validation items) or "in-sample" (CAA)."""
    return PROTOCOL_PRESETS[cfg.run.get("protocol", "steerscale-default")]["selection"]
