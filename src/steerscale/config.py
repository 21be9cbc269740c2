"""Every experiment's configuration, in one place: typed dataclasses whose fields carry default, help and checks.

One source: a field is declared once (``opt(name)`` reads the shared ``OPTIONS`` table, or ``option(...)``
declares a field of one class), and from it come

* the API default (``SweepConfig().multipliers``),
* the CLI flag (``steerscale.cli.options.add_fields``: ``--multipliers``, its default, help and choices),
* the TOML key of ``steerscale reproduce`` (``from_section``: ``[sweep] multipliers = [...]``),
* the check (``problem``): choices, lower bound, type; ``validate`` of each class and the CLI's
  before-loading checks use it, so a bound is written once.

Field metadata keys: ``help``; ``choices``; ``min`` (inclusive lower bound of a number); ``expected`` (how
the CLI says what a flag wants, e.g. "a positive number of tokens"; file and API messages say "an integer
>= 1"); ``cli`` (how the flag is read: ``"layers"`` = ``parse_layers`` text, ``"floats"``/``"ints"`` =
comma list, ``"later"`` = a string whose choices ``validate`` checks, ``None`` = the field's own type); ``flag`` (``False``: no CLI flag); ``metavar``;
``auto`` (the flag also takes ``auto``: ``--batch-size auto``, resolved by the CLI, steerscale.autobatch);
``short`` (a short flag, ``-o``); ``required`` (the flag must be given); ``positional`` (``True``: a positional
argument, ``"?"``: an optional one); ``nargs``.

Classes: ``SweepConfig`` (a layer x multiplier A/B sweep), ``OpenEndedConfig`` (an open-ended sweep),
``ModelOptions`` / ``PromptOptions`` / ``VectorOptions`` (option groups shared by commands), the options of
the other commands (``AblationOptions``, ``GenerateOptions``, ... ``GlobalOptions``: every flag of every
command is a field; tests/cli/test_cli_fields.py walks the parser to check it), and the
sections of a ``steerscale reproduce`` TOML file (``RunSection``, ``DataSection``, ``SweepSection``,
``OpenEndedSection``) with ``ReproduceConfig`` / ``ModelSpec``, which keep the sections as plain dicts
because their JSON is hashed into the keys that mark result folders complete (see reproduce.config_hash).

Why this module is long: it is the one table of every option's default, help and bound (the point of
having one source); splitting it would put the options of one experiment in two places.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields

from .core.prompts import TEMPLATES
from .engines import ENGINES  # the name -> engine table (engines import no config)
from .errors import SteerscaleError
from .core.steering import POSITIONS, WINDOW_MODES
from .core.vectors import NORMALIZATIONS

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
DEVICE_PATTERN = r"cpu|auto|mps|cuda(:[0-9]{1,4})?"
DEVICE_EXPECTED = "one of cpu, cuda, cuda:N, mps, auto"
# Upper bounds (metadata ``max``): past them a run would hang or exhaust memory before doing anything useful.
MAX_BOOTSTRAP = 1_000_000
MAX_NEW_TOKENS = 1_000_000  # and never past the model's context (core.checks.check_context, CLI and reproduce alike)
MAX_MULTIPLIER = 1e30  # |m|; far past saturation (flagged by core.checks.saturated_points), short of float32 overflow
MAX_BATCH = 65_536
MAX_SEED = 2**32 - 1  # numpy's seeds
SCREEN_FIELDS = ("screen", "confirm_top", "spot_check", "val_fraction")  # dropped from identities without a screen
SCALING_Y = ("max", "negative", "positive")


def option(default=MISSING, *, factory=MISSING, help: str = "", **meta):
    """A dataclass field with its default (or `factory` for lists) and its metadata (module docstring)."""
    meta = dict(meta, help=help)
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# Options several classes share, declared once: name -> (default or factory, metadata).
OPTIONS: dict[str, dict] = {
    "model": dict(default="smollm2-135m",
                  help="hub id, model directory, .gguf file, or 'smollm2-135m' (default, embedded)"),
    "dtype": dict(default="float32", choices=DTYPES,
                  help="weights and activations (default float32; bfloat16 is faster on CPUs with bf16 matmuls, "
                  "scores then differ from float32 by up to a few hundredths)"),
    "device": dict(default="cpu", pattern=DEVICE_PATTERN, expected=DEVICE_EXPECTED,
                   help="cpu, cuda, cuda:N, or auto (shard over GPUs)"),
    "trust_remote_code": dict(default=False, help="allow model code from the hub (off by default)"),
    "template": dict(default="chat", choices=TEMPLATES,
                     help="prompt format: the model's chat template, [INST] ... [/INST], or Input:/Response: "
                     "(default chat)"),
    "system": dict(default=None, help="system prompt (default none)"),
    "batch_size": dict(default=8, min=1, max=MAX_BATCH, expected=f"a positive integer <= {MAX_BATCH}", auto=True,
                       help="prompts per forward pass, or 'auto': the largest that fits on an accelerator, 8 on a "
                       "CPU (default 8)"),
    "positions": dict(default="all", choices=POSITIONS,
                      help="steer every token (paper) or from the last instruction token on (CAA code)"),
    "seed": dict(default=0, min=0, max=MAX_SEED,
                 expected="an integer >= 0 and < 2^32 (bootstrap and sampling seed)",
                 help="bootstrap seed"),
    "n_bootstrap": dict(default=1000, min=1, max=MAX_BOOTSTRAP, flag=False,
                        help="bootstrap resamples for every interval"),
    "normalize": dict(default="none", choices=NORMALIZATIONS,
                      help="vector normalisation: none (raw mean difference), unit, residual (default none)"),
    "harmful": dict(default="harmful-prompts", help="harmful prompts: built-in name or JSON/JSONL file"),
    "harmless": dict(default="harmless-prompts", help="harmless prompts: built-in name or JSON/JSONL file"),
    "neutral": dict(default="neutral-text", help="neutral paragraphs for cross-entropy"),
    "n_logodds": dict(default=None, min=1, expected="a positive number of prompts (leave it out to use all)",
                      help="prompts per kind for log-odds (default all)"),
    "n_generate": dict(default=4, min=0, max=100_000, expected="a number of prompts >= 0 (0 = no generation)",
                       help="prompts per kind to generate for (default 4; 0 = none)"),
    "max_new_tokens": dict(default=40, min=1, max=MAX_NEW_TOKENS, expected="a positive number of tokens "
                           f"(at most {MAX_NEW_TOKENS}, and within the model's context)",
                           help="tokens to generate (default 40)"),
    "n_neutral": dict(default=None, min=0, expected="a number of paragraphs >= 0 (0 = no cross-entropy)",
                      help="neutral paragraphs for CE (default all 42; 0 = none)"),
    "ce_bound": dict(default=None, min=0, expected="a number >= 0 (nats per token)",
                     help="report the largest multiplier per point whose CE increase stays <= this (nats/token)"),
    "limit": dict(default=None, cli="limit", metavar="N",
                  help="use N items (or a fraction 0 < N < 1 of them): a seeded sample stratified by matching "
                  "letter, in file order (data.sample_items)"),
    "letter_balance": dict(default="balanced", choices=("balanced", "swap", "none"),
                           help="vector estimator: balanced (default; equal weight per matching letter, cancels the "
                           "answer-letter direction), swap (also each item with its options exchanged; twice the "
                           "passes), none (CAA's raw mean; carries s_bar x the letter direction)"),
    "allow_letter_imbalance": dict(default=False, help="steer with a 'none' vector whose letter-imbalance term is "
                                   "over 10 percent of the vector at a swept layer (refused by default)"),
    "val_fraction": dict(default=0.5, help="share of evaluation items used to choose the peak layer (the validation "
                         "split; the gradient screen runs on these items too)"),
    "screen": dict(default="none", choices=("none", "grad"),
                   help="grad: rank every layer by d(score)/dm at m = 0 (one forward + backward pass per batch on the "
                   "validation items), then sweep exactly only the top --confirm-top layers of each sign (default none: "
                   "every layer exactly)"),
    "confirm_top": dict(default=5, min=1, expected="a positive number of layers",
                        help="with --screen grad: layers of each sign the exact engine sweeps (default 5)"),
    "spot_check": dict(default=3, min=0, expected="a number of layers >= 0",
                       help="with --screen grad: screened-out layers computed exactly as a check (seeded); one that "
                       "beats the K-th confirmed layer widens K (default 3)"),
    "openended_multipliers": dict(factory=lambda: [-4.0, -2.0, 0.0, 2.0, 4.0], cli="floats",
                                  help="comma list (default -4,-2,0,2,4)"),
}


def opt(name: str, **override):
    """The field of shared option `name` (OPTIONS), with `override` (e.g. another default)."""
    spec = dict(OPTIONS[name], **override)
    if "factory" in spec:
        return option(factory=spec.pop("factory"), **spec)
    return option(spec.pop("default"), **spec)


# ------------------------------------------------------------------------------------------------ checks

_KINDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
          "list[float]": "a list of numbers", "list[int]": "a list of integers", "list[str]": "a list of strings"}


def _kind_ok(kind: str, v) -> bool:
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "str":
        return isinstance(v, str)
    if kind == "bool":
        return isinstance(v, bool)
    if kind.startswith("list["):
        return isinstance(v, list) and all(_kind_ok(kind[5:-1], x) for x in v)
    return True  # unions other than "X | None" are checked by the class's validate


def _kind(f) -> tuple[str, bool]:
    """(base type, None allowed) of a field from its annotation, e.g. 'int | None' -> ('int', True)."""
    t = str(f.type).replace(" ", "")
    optional = t.endswith("|None")
    return (t[: -len("|None")] if optional else t), optional


def problem(f, value, cli: bool = False) -> str | None:
    """What is wrong with `value` for field `f` (its type, choices, lower bound), or None.

    The text follows "<label> <value>: expected ..." (the caller adds label and value). With ``cli`` the
    field's ``expected`` phrase is used where it has one (argparse has already checked the type)."""
    meta, (kind, optional) = f.metadata, _kind(f)
    if value is None and optional:
        return None
    low, high = meta.get("min"), meta.get("max")
    if meta.get("pattern") is not None and (not isinstance(value, str) or not re.fullmatch(meta["pattern"], value)):
        return meta.get("expected") or _KINDS.get(kind, kind)
    if cli and meta.get("expected") and (low is not None or high is not None):
        ok = value == value and abs(value) != math.inf and (low is None or value >= low) and \
            (high is None or value <= high)
        return None if ok else meta["expected"]
    if meta.get("choices") and value not in meta["choices"]:
        return f"one of {', '.join(meta['choices'])}"
    typed = _kind_ok(kind, value)
    if kind == "float" and typed and not math.isfinite(value):
        typed = False
    if low is not None and (not typed or value < low):
        return f"{_KINDS.get(kind, kind)} >= {low:g}" + (f" ({meta['unit']})" if meta.get("unit") else "")
    if high is not None and (not typed or value > high):
        return f"{_KINDS.get(kind, kind)} <= {high:g}" + (f" ({meta['unit']})" if meta.get("unit") else "")
    if not typed:
        return _KINDS.get(kind, kind) + (" (or leave it out)" if optional else "")
    return None


def check_multiplier(m, label: str = "multiplier") -> float:
    """A steering multiplier: a finite number with |m| <= MAX_MULTIPLIER (beyond it every residual stream is
    swamped and float16/float32 arithmetic overflows); else a one-line error."""
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m):
        raise SteerscaleError(f"{label} {m!r}: expected a finite number")
    if abs(m) > MAX_MULTIPLIER:
        raise SteerscaleError(f"{label} {m!r}: expected a number between -{MAX_MULTIPLIER:g} and {MAX_MULTIPLIER:g}")
    return float(m)


def check_multipliers(values, label: str = "multipliers") -> list[float]:
    """The one check of a list of steering multipliers (every command, TOML section and config class).

    `values` must be a non-empty list (or other sequence: a tuple, a numpy array) of numbers, each passing
    `check_multiplier` (message '<label> value <m>: ...'). Returned: floats, -0 as 0, a repeated value counted once with the FIRST
    occurrence kept -- the caller's order is kept, because the A/B sweep's and ablation's tables list
    multipliers in the order given. Callers whose tables list multipliers ascending (open-ended, the showcase's
    dose panel) sort the result themselves. A repeat is logged: it would repeat rows and narrow the intervals."""
    seq = None if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__") else list(values)
    if seq is None or not all(isinstance(m, (int, float)) and not isinstance(m, bool) for m in seq):
        raise SteerscaleError(f"{label} {values!r}: expected a list of numbers")
    values = seq
    if not values:
        raise SteerscaleError(f"{label}: expected at least one value")
    mults = list(dict.fromkeys(check_multiplier(m, f"{label} value") + 0.0 for m in values))
    if len(mults) != len(values):
        log.warning("%s %s: repeated values count once: %s", label, list(values), mults)
    return mults


def check_val_fraction(value, label: str = "val_fraction") -> float:
    """The share of evaluation items that chooses the peak layer: a number strictly between 0 and 1."""
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 < float(value) < 1):
        raise SteerscaleError(f"{label} {value!r}: expected a number between 0 and 1")
    return float(value)


def check_fields(obj, names=None, label=lambda name: name) -> None:
    """Raise the first `problem` among the fields `names` (default all) of dataclass `obj`, as
    '<label(name)> <value!r>: expected ...'."""
    by_name = {f.name: f for f in fields(obj)}
    for name in names or by_name:
        value = getattr(obj, name)
        why = problem(by_name[name], value)
        if why:
            raise SteerscaleError(f"{label(name)} {value!r}: expected {why}")


def from_section(cls, raw, where: str, label=None):
    """Read one TOML table into dataclass `cls`: unknown keys and wrong types are one-line errors naming
    `where` (file and section) and the key. Fields not in `raw` keep their defaults. The values are kept
    as written (no conversion), so the section's dict (``asdict``) is what the file says."""
    if not isinstance(raw, dict):
        raise SteerscaleError(f"{where} must be a table")
    known = [f.name for f in fields(cls)]
    for k in raw:
        if k not in known:
            raise SteerscaleError(f"{where} unknown key {k!r} (known: {', '.join(known)})")
    obj = cls(**raw)
    obj.validate(label or (lambda k: f"{where}: {k}"))
    return obj


# ------------------------------------------------------------------------------------------------ option groups


@dataclass
class ModelOptions:
    """Which model to load and how (every command that loads one)."""

    model: str = opt("model")
    dtype: str = opt("dtype")
    device: str = opt("device")
    trust_remote_code: bool = opt("trust_remote_code")


@dataclass
class PromptOptions:
    """How prompts are formatted and batched."""

    template: str = opt("template")
    system: str | None = opt("system")
    batch_size: int = opt("batch_size")


@dataclass
class VectorOptions:
    """Where a run's steering vectors come from: a file, or trained first (``vectors.vectors_for_run``)."""

    vectors: str | None = option(None, help="vectors from 'steerscale train' (default: train on --train-data "
                                 "first, or reuse OUT/vectors.safetensors trained the same way)")
    allow_foreign_vectors: bool = option(False, help="steer with vectors whose metadata names another model of "
                                         "the same shape")
    train_data: str = option("refusal-train", help="A/B dataset for vectors when --vectors is not given")
    train_limit: int | float | None = opt("limit", help="train on N items (or a fraction 0 < N < 1): a seeded, "
                                          "letter-stratified sample")
    normalize: str = opt("normalize")
    letter_balance: str = opt("letter_balance")
    allow_letter_imbalance: bool = opt("allow_letter_imbalance")


@dataclass
class JudgeOptions:
    """An optional refusal judge for open-ended generations (openended.HTTPJudge or HFJudge)."""

    judge_url: str | None = option(None, help="OpenAI-compatible endpoint (base URL or .../chat/completions)")
    judge_name: str = option("judge", help="model name sent to the judge endpoint")
    judge_key_env: str | None = option(None, help="environment variable holding the judge endpoint's API key")
    judge_timeout: float = option(30.0, min=0.001, max=86_400.0,
                                  expected="a positive number of seconds (at most 86400)",
                                  help="seconds per judge request (default 30)")
    judge_model: str | None = option(None, help="local judge: a model spec for load_model (chat model)")


@dataclass
class ClusterOptions:
    """How ``sweep --backend ray`` runs its workers (backends/ray.py, docs/scaling_out.md)."""

    address: str | None = option(None, help="Ray cluster address: 'auto' (a running cluster), HOST:PORT, "
                                 "ray://HOST:PORT (needs ray[client]); default a new local Ray cluster")
    workers: int | None = option(None, min=1, expected="a positive number of Ray workers (leave it out for as "
                                 "many as fit)", help="Ray actors (model replicas); default as many as fit")
    gpus_per_worker: float | None = option(None, min=0, expected="a number of GPUs >= 0",
                                           help="GPUs each Ray actor reserves (default 1 with --device cuda/auto, "
                                           "else 0; 2 for a 70B in bf16 with --device auto)")
    cpus_per_worker: int = option(1, min=1, expected="a positive number of CPUs",
                                  help="CPUs (torch threads) per Ray actor (default 1)")
    store: str = option("shared", choices=("shared", "driver"),
                        help="Ray workers write points into --out on a shared filesystem (default), or return them "
                        "to the driver, which writes them")
    unit_timeout: float = option(3600.0, min=1, expected="a number of seconds >= 1",
                                 help="seconds a Ray worker may take to load the model or run one unit before it is "
                                 "replaced and the unit retried (default 3600)")
    unit_retries: int = option(2, min=0, expected="a number of retries >= 0",
                               help="times a unit is retried on a fresh Ray worker after its worker died or timed "
                               "out (default 2)")
    max_memory: str | None = option(None, metavar="DEV=SIZE,...",
                                    help="with --device auto: memory limits for loading the model in each Ray worker, "
                                    "e.g. 0=70GiB,1=70GiB,cpu=200GiB (accelerate max_memory; allows spilling)")
    offload_folder: str | None = option(None, help="with --device auto: folder on each node for weights that do not "
                                        "fit the memory limits (accelerate offload_folder; allows spilling)")


@dataclass
class AblationRecipe:
    """How `steerscale ablation` finds its refusal direction. The defaults are refusal_direction's recipe
    (Arditi et al. 2024, andyrdt/refusal_direction, pipeline/run_pipeline.py and submodules/select_direction.py);
    every field is one way to differ from it, and the run records each difference (ablation_recipe.py)."""

    candidate_positions: str = option("post-instruction", choices=("post-instruction", "last"),
                                      help="candidate directions at every post-instruction token of the template "
                                      "(refusal_direction) or at the last prompt token only")
    filter_prompts: str = option("baseline-refusal", choices=("baseline-refusal", "none"),
                                 help="keep train/validation harmful prompts the model refuses (refusal log-odds "
                                 "> 0) and harmless ones it does not (< 0), as refusal_direction does; none: keep all")
    kl_threshold: float | None = option(0.1, help="drop candidates whose ablation moves harmless next-token "
                                        "distributions by more KL (default 0.1; <0: no bound)")
    induce_filter: str = option("on", choices=("on", "off"),
                                help="drop candidates whose addition (x1 at their layer) leaves harmless refusal "
                                "log-odds below --induce-threshold (on, as refusal_direction)")
    induce_threshold: float = option(0.0, help="the induce-refusal filter's bound (default 0.0)")
    prune: float = option(0.2, help="drop candidates from the last fraction of the model (default 0.2)")
    prune_rule: str = option("refusal_direction", choices=("refusal_direction", "output-index"),
                             help="refusal_direction: their rule on their layer index (input of block L+1 = "
                             "output of layer L); output-index: the same formula on steerscale's index "
                             "(prunes one layer fewer)")


# ------------------------------------------------------------------------------------------------ experiments


@dataclass
class SweepConfig:
    """What to sweep and how. ``layers=None`` means every layer."""

    layers: list[int] | None = option(None, cli="layers", help="'all', '13', '10-14', '0-29:3' (every 3rd), "
                                      "'3,5,7', or from the end: '-1' (last), '-4--1' (default all)")
    multipliers: list[float] = option(factory=lambda: [-1.0, 0.0, 1.0], cli="floats",
                                      help="comma list (default -1,0,1)")
    positions: str = opt("positions")
    template: str = opt("template")
    system: str | None = opt("system")
    batch_size: int = opt("batch_size")
    engine: str = option("fast", choices=ENGINES, metavar="{" + ",".join(ENGINES) + "}", cli="later",
                         help="sweep engine: fast (default; runs only the layers and tokens steering changes, same "
                         "scores to 1e-5 in float32) or naive (one hooked full forward pass per point, the reference)")
    n_bootstrap: int = opt("n_bootstrap")
    seed: int = opt("seed")
    screen: str = opt("screen")
    confirm_top: int = opt("confirm_top")
    spot_check: int = opt("spot_check")
    val_fraction: float = opt("val_fraction")

    def identity(self) -> dict:
        """``asdict`` for run identities: without the screen's fields when no screen runs, so run folders and
        result keys made before the screen existed stay valid."""
        d = asdict(self)
        if d.get("screen", "none") == "none":
            for k in SCREEN_FIELDS:
                d.pop(k, None)
        return d

    def validate(self, n_layers: int) -> "SweepConfig":
        """A checked copy for a model of `n_layers` layers: layers every layer for None, sorted and unique;
        multipliers as floats (-0 is 0), repeats counted once. Raises SteerscaleError naming the field."""
        check_fields(self, ("positions", "engine"))
        mults = check_multipliers(self.multipliers)  # kept order: the tables list multipliers as given
        layers = list(range(n_layers)) if self.layers is None else [int(l) for l in self.layers]
        layers = [l + n_layers if -n_layers <= l < 0 else l for l in layers]  # -1 = the last layer
        bad = [l for l in layers if not 0 <= l < n_layers]
        if bad:
            shown = str(bad) if len(bad) <= 8 else f"[{', '.join(map(str, bad[:4]))}, ..., {bad[-1]}] ({len(bad)} layers)"
            raise SteerscaleError(f"layers {shown}: out of range, this model has layers 0..{n_layers - 1}")
        check_fields(self, ("batch_size", "seed", "screen", "confirm_top", "spot_check"))
        check_val_fraction(self.val_fraction)
        # Repeated layers count once, like repeated multipliers (check_multipliers).
        if len(set(layers)) != len(layers):
            log.warning("layers: repeated values count once")
        return SweepConfig(**dict(asdict(self), layers=sorted(set(layers)), multipliers=mults))


@dataclass
class OpenEndedConfig:
    """What to sweep. Points are single layers (`layers`) plus windows (every start x width)."""

    layers: list[int] | None = option(None, cli="layers", help="single layers: 'all', '13', '0-29', '0-29:3' "
                                      "(every 3rd), '0,3,6', '-1' (last) (default all, or none when windows are "
                                      "given)")
    window_starts: list[int] = option(factory=list, cli="ints", help="multi-layer windows: comma list of first layers")
    window_widths: list[int] = option(factory=list, cli="ints", help="comma list of window widths (every start x width)")
    window_mode: str = option("per-layer", choices=WINDOW_MODES, help="each layer its own vector, or the start "
                              "layer's vector at every layer of the window")
    multipliers: list[float] = opt("openended_multipliers")
    positions: str = opt("positions")
    template: str = opt("template")
    system: str | None = opt("system")
    batch_size: int = opt("batch_size")
    n_logodds: int | None = opt("n_logodds")  # None = all
    n_generate: int = opt("n_generate")  # 0 = no generation
    max_new_tokens: int = opt("max_new_tokens")
    sampled: bool = option(False, help="also sampled generation (seeded)")
    temperature: float = option(0.7, min=1e-6, max=100.0, expected="a positive number <= 100",
                                 help="sampling temperature")
    n_neutral: int | None = opt("n_neutral")  # None = all; 0 = no CE
    ce_max_tokens: int = option(256, min=1, max=MAX_NEW_TOKENS, flag=False,
                                help="tokens of each neutral paragraph scored for CE")
    ce_bound: float | None = opt("ce_bound")  # largest multiplier whose CE increase stays <= this, per point and sign
    n_bootstrap: int = opt("n_bootstrap")
    seed: int = opt("seed", help="bootstrap and sampling seed")

    def points(self, n_layers: int) -> list[tuple[int, int]]:
        """(layer_start, layer_end) pairs, inclusive, sorted; windows past the last layer are skipped."""
        if self.window_mode not in WINDOW_MODES:
            raise SteerscaleError(f"window mode {self.window_mode!r}: expected one of {', '.join(WINDOW_MODES)}")
        pts = set()
        layers = self.layers
        if layers is None and not self.window_starts:
            layers = list(range(n_layers))
        for l in layers or []:
            l = l + n_layers if -n_layers <= l < 0 else l  # -1 = the last layer
            if not 0 <= l < n_layers:
                raise SteerscaleError(f"layers [{l}]: out of range, this model has layers 0..{n_layers - 1}")
            pts.add((l, l))
        if bool(self.window_starts) != bool(self.window_widths):
            raise SteerscaleError("windows: give both window starts and window widths")
        for s in self.window_starts:
            for w in self.window_widths:
                if w < 1 or s < 0:
                    raise SteerscaleError(f"window start {s} width {w}: expected start >= 0 and width >= 1")
                if s + w <= n_layers:
                    pts.add((s, s + w - 1))
        if not pts:
            raise SteerscaleError("no layers or windows to sweep (windows past the last layer are skipped)")
        return sorted(pts, key=lambda p: (p[1] - p[0], p[0]))

    def validate(self) -> "OpenEndedConfig":
        """A checked copy: multipliers sorted, unique floats (-0 is 0). Raises SteerscaleError naming the field."""
        check_fields(self, ("positions",))
        mults = sorted(check_multipliers(self.multipliers))  # the open-ended tables list multipliers ascending
        check_fields(self, ("batch_size", "n_generate", "max_new_tokens", "seed", "n_logodds", "n_neutral"))
        return OpenEndedConfig(**dict(asdict(self), multipliers=mults))
