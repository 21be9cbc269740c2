"""The `steerscale reproduce` TOML file: its sections as typed dataclasses (fields declared once, with config.option /
config.opt), and reading a file into a ReproduceConfig.

Each table is read into its section class (``[run]`` RunSection, ``[data]`` DataSection, ``[sweep]`` and every
``[[models]]`` entry's overrides SweepSection, ``[openended]`` OpenEndedSection) by ``config.from_section``:
defaults, unknown keys, wrong types and bounds are the classes' business, and every error is one line naming
the file, the section and the key. The [run] protocol preset fills [sweep] keys the file leaves out. Relative
paths (data files, model folders, imported tables) are read relative to the config file's folder.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path

from ..config import (
    MAX_SEED, SCALING_Y, check_fields, check_multipliers, check_val_fraction, from_section, opt, option,
)
from ..engines import ENGINES
from ..errors import SteerscaleError

# ------------------------------------------------------------------------------------------------ the sections


# [run] protocol presets: the sweep settings each implies (defaults under the user's own keys) and how peaks are
# chosen. A model whose effective settings differ from its preset's is labelled "custom" (scaling fits only
# like with like). "caa" follows CAA (Rimsky et al.): steering from the instruction end, layers picked on the
# test items themselves. CAA also rescaled each behaviour's vectors to the mean norm across its 7 behaviours;
# with the one behaviour a reproduce run trains that rescaling is not defined, so the preset keeps the
# refusal vector's own norm (steerscale.vectors.normalize_across_behaviours does CAA's rescaling when you train
# several behaviours): multipliers can differ from CAA's by that per-layer factor. CAA's estimator is the raw
# mean (letter_balance "none"); the preset reproduces it, so its letter-imbalance bound is waived
# (allow_letter_imbalance) -- the letter figures are still recorded and the warning still logged.
PROTOCOL_PRESETS = {
    "steerscale-default": {"sweep": {"positions": "all", "normalize": "none", "letter_balance": "balanced"},
                           "selection": "held-out"},
    # CAA's strings: "[INST] {question} [/INST] (A" (nrimsky/CAA utils/tokenize.py, tokenize_llama_chat)
    "caa": {"sweep": {"positions": "instruction_end", "normalize": "none", "template": "llama2",
                      "letter_balance": "none", "allow_letter_imbalance": True}, "selection": "in-sample"},
}


def _check_layer_list(obj, label) -> None:
    """[sweep] / [openended] layers, layer_stride and multipliers (which must include the baseline 0)."""
    if not (obj.layers == "all" or (isinstance(obj.layers, list) and all(isinstance(l, int) for l in obj.layers))):
        raise SteerscaleError(f"{label('layers')} {obj.layers!r}: expected \"all\" or a list of layer indices")
    check_fields(obj, ("layer_stride",), label)
    if not isinstance(obj.multipliers, list):  # a TOML array (a tuple cannot come from a file)
        raise SteerscaleError(f"{label('multipliers')} {obj.multipliers!r}: expected a list of numbers")
    check_multipliers(obj.multipliers, label("multipliers"))  # checked only: the section is kept as written
    if 0 not in obj.multipliers:
        raise SteerscaleError(f"{label('multipliers')} must include 0 (the unsteered baseline every effect is "
                              f"measured against)")


@dataclass
class RunSection:
    """[run]: analysis settings of a reproduce run."""

    seed: int = option(0, min=0, max=MAX_SEED, help="bootstrap and validation/test split seed")
    n_bootstrap: int = opt("n_bootstrap")
    val_fraction: float = opt("val_fraction")
    scaling_y: str = option("max", choices=SCALING_Y, help="the peak fed to the scaling fit")
    protocol: str = option("steerscale-default", help="protocol preset (reproduce.PROTOCOL_PRESETS)")
    split_half: bool = option(True, help="split-half stability of each model's vectors (analysis.reliability): two "
                              "more training passes over half the training pairs each, cost recorded")

    def validate(self, label) -> None:
        if self.protocol not in PROTOCOL_PRESETS:
            raise SteerscaleError(f"{label('protocol')} {self.protocol!r}: expected one of {', '.join(PROTOCOL_PRESETS)}")
        check_fields(self, ("scaling_y", "seed", "n_bootstrap", "split_half"), label)
        check_val_fraction(self.val_fraction, label("val_fraction"))


@dataclass
class DataSection:
    """[data]: the A/B items to train on and to test on."""

    train: str = option("refusal-train", help="items for the steering vectors: built-in name or CAA JSON/JSONL file")
    test: str = option("refusal-test", help="held-out evaluation items")
    train_limit: int | float | None = option(None, help="N training items (or a fraction 0 < N < 1): a seeded, "
                                             "letter-stratified sample ([run] seed)")
    test_limit: int | float | None = option(None, help="N test items (or a fraction): seeded, letter-stratified")
    test_sets: list[str] = option(factory=list, help="extra test sets, swept at the peak layers only")

    def validate(self, label) -> None:
        ts = self.test_sets
        if not isinstance(ts, list) or not all(isinstance(t, str) and t for t in ts):
            raise SteerscaleError(f"{label('test_sets')} {ts!r}: expected a list of dataset names or files")
        dup = sorted({t for t in ts if ts.count(t) > 1})
        if dup:
            raise SteerscaleError(f"{label('test_sets')}: {dup[0]!r} is listed twice; list each test set once")
        check_fields(self, ("train", "test"), label)
        from ..core.data import check_limit

        for k in ("train_limit", "test_limit"):
            v = getattr(self, k)
            if isinstance(v, str):
                raise SteerscaleError(f"{label(k)} {v!r}: expected a number of items or a fraction in (0, 1)")
            check_limit(v, label(k))


@dataclass
class SweepSection:
    """[sweep] (and the per-model overrides in [[models]]): the A/B sweep of each model."""

    layers: str | list[int] = option("all", help="\"all\" or a list of layer indices")
    layer_stride: int = option(1, min=1, max=10_000, help="keep every Nth of those layers")
    multipliers: list[float] = option(factory=lambda: [-1.0, 0.0, 1.0], help="must include 0")
    template: str = opt("template")
    positions: str = opt("positions")
    batch_size: int = opt("batch_size")
    normalize: str = opt("normalize")
    system: str | None = opt("system")
    engine: str | None = option(None, choices=ENGINES, help="default: the fastest exact engine")
    letter_balance: str = opt("letter_balance")
    allow_letter_imbalance: bool = opt("allow_letter_imbalance")
    screen: str = opt("screen")
    confirm_top: int = opt("confirm_top")
    spot_check: int = opt("spot_check")

    def validate(self, label) -> None:
        _check_layer_list(self, label)
        check_fields(self, ("template", "positions", "batch_size", "normalize", "system", "engine", "letter_balance",
                            "allow_letter_imbalance", "screen", "confirm_top", "spot_check"), label)


@dataclass
class OpenEndedSection:
    """[openended]: the open-ended sweep on each model's A/B vectors (template, system, positions and batch
    size are the model's [sweep] settings)."""

    layers: str | list[int] = option("all", help="\"all\" or a list of layer indices")
    layer_stride: int = option(1, min=1, max=10_000, help="keep every Nth of those layers")
    multipliers: list[float] = opt("openended_multipliers")
    harmful: str = opt("harmful")
    harmless: str = opt("harmless")
    neutral: str = opt("neutral")
    n_logodds: int | None = opt("n_logodds")
    n_generate: int = opt("n_generate")
    max_new_tokens: int = opt("max_new_tokens")
    n_neutral: int | None = opt("n_neutral")
    ce_bound: float | None = opt("ce_bound", unit="nats per token")

    def validate(self, label) -> None:
        _check_layer_list(self, label)
        check_fields(self, ("n_logodds", "n_generate", "n_neutral", "max_new_tokens", "ce_bound", "harmful",
                            "harmless", "neutral"), label)


@dataclass
class ModelSection:
    """A [[models]] entry's own keys (the rest of the entry are [sweep] overrides, SweepSection's)."""

    spec: str = option("", help="hub id, model directory, .gguf file or smollm2-135m")
    name: str | None = option(None, help="the model's name in tables and folders (default from spec)")
    dtype: str = opt("dtype")
    device: str = opt("device")
    trust_remote_code: bool = opt("trust_remote_code")

    def validate(self, label) -> None:
        check_fields(self, ("spec", "name", "dtype", "device", "trust_remote_code"), label)
        if not self.spec.strip():
            raise SteerscaleError(f"{label('spec')} {self.spec!r}: expected a non-empty string (a hub id, model "
                                  f"directory, .gguf file or smollm2-135m)")
        if self.name is not None and not self.name.strip():
            raise SteerscaleError(f"{label('name')} {self.name!r}: expected a non-empty string (or leave it out)")


@dataclass
class ImportSection:
    """An [[imports]] entry: a published table of peaks to compare with (scaling.imported)."""

    table: str = option("", help="a CSV/JSON file or a built-in table name")
    include_in_fit: bool = option(True, help="fit the scaling law to these points too")

    def validate(self, label) -> None:
        check_fields(self, ("table", "include_in_fit"), label)
        if not self.table.strip():
            raise SteerscaleError(f"{label('table')} {self.table!r}: expected a non-empty string")


MODEL_KEYS = {f.name for f in fields(ModelSection)}
IMPORT_KEYS = {f.name for f in fields(ImportSection)}


@dataclass
class ModelSpec:
    spec: str
    name: str
    dtype: str = "float32"
    device: str = "cpu"
    trust_remote_code: bool = False
    sweep: dict = field(default_factory=dict)  # effective SweepSection settings for this model (asdict)
    protocol: str = "steerscale-default"  # [run] protocol, or "custom" where the settings leave the preset


@dataclass
class ReproduceConfig:
    """A read reproduce config (reproduce.load_config). The sections are plain dicts of the section classes'
    fields (``asdict``): JSON-ready, and hashed into the keys that mark result folders complete."""

    path: str
    run: dict
    data: dict
    sweep: dict
    models: list[ModelSpec]
    imports: list[dict]
    openended: dict | None = None  # the [openended] section with defaults filled in; None = no open-ended sweep
    showcase: dict | None = None  # the [showcase] section's panel keys (showcase.ShowcaseConfig); None = none

    def to_dict(self) -> dict:
        return {"path": self.path, "run": self.run, "data": self.data, "sweep": self.sweep,
                "models": [m.__dict__ for m in self.models], "imports": self.imports, "openended": self.openended,
                "showcase": self.showcase}


SECTIONS = {"run": RunSection, "data": DataSection, "sweep": SweepSection, "openended": OpenEndedSection}


# ------------------------------------------------------------------------------------------------ reading a file

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
