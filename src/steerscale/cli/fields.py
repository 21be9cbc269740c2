"""The flags of the commands that have no experiment class, as config fields: one dataclass per command (or
shared group), each field built with ``config.option`` / ``config.opt`` so it carries its default, help and bounds
once; ``cli/options.add_fields`` builds each argparse flag from its field and ``check_options`` checks every value
with the field's own bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import MAX_SEED, opt, option

@dataclass
class GlobalOptions:
    """Flags of `steerscale` itself, before the command."""

    debug: bool = option(False, help="show full tracebacks")
    quiet: bool = option(False, help="no progress bars or info lines (warnings and errors still print; results "
                         "paths too)")


@dataclass
class OutputOptions:
    """Where a command writes, and how it prints (the command may word `out`'s help for what it writes)."""

    out: str = option(None, short="-o", required=True, help="results folder")
    json: bool = option(False, help="print JSON")


@dataclass
class ItemOptions:
    """The A/B items or prompts a command reads."""

    limit: int | float | None = opt("limit")
    data: str = option("refusal-test", help="evaluation dataset: CAA JSON/JSONL file or built-in name ('list' lists "
                       "them)")


@dataclass
class InfoOptions:
    """`steerscale info` (besides the model's options)."""

    model_positional: str | None = option(None, positional="?", metavar="MODEL", help="deprecated: the model as a "
                                          "positional argument; use --model like every other command")


@dataclass
class TrainOptions:
    """`steerscale train` (besides the model, prompt and vector options)."""

    data: str | None = option(None, help="deprecated spelling of --train-data (--data is the evaluation set in every "
                              "other command)")
    cache_dir: str | None = option(None, help="reuse activations cached here when the inputs match")


@dataclass
class ShardOptions:
    """How `steerscale sweep` runs past one process (docs/scaling_out.md); the Ray options are ClusterOptions."""

    shard: str | None = option(None, metavar="K/N", help="run only unit K of an N-unit plan into the shared --out "
                               "folder (SLURM job arrays); 'steerscale merge OUT' builds the tables when all N are "
                               "done")
    shards: int | None = option(None, min=1, expected="a positive number", metavar="N",
                                help="split the sweep into N units (item shards first, then layer groups; default 1, "
                                "or 2 per Ray worker)")
    backend: str = option("local", choices=("local", "ray"), help="where the units run: this process (default) or "
                          "Ray actors (pip install 'steerscale[ray]')")


@dataclass
class FolderOptions:
    """The folder argument of `steerscale merge` and `steerscale report` (each words the help)."""

    folder: str = option(None, positional=True, help="a results folder")


@dataclass
class DataListOptions:
    """`steerscale data`."""

    action: str = option(None, positional=True, choices=("list",),
                         help="'list': the built-in datasets with sizes and letter balance")


@dataclass
class SimilarityOptions:
    """`steerscale similarity`."""

    vectors: list[str] = option(None, positional=True, nargs="+",
                                help="vector files from 'steerscale train', optionally NAME=FILE")
    normalize_across: bool = option(False, help="rescale each behaviour's vector to the mean norm across behaviours "
                                    "at each layer (CAA) and save the results as NAME.normalized.safetensors in --out")


@dataclass
class OpenEndedCommandOptions:
    """`steerscale openended` flags that are neither OpenEndedConfig nor a TOML key."""

    phrases: str | None = option(None, help="refusal-phrase list (JSON); default the built-in list")


@dataclass
class AblationOptions:
    """`steerscale ablation` besides the model and prompt options and the recipe (AblationRecipe, recorded in
    the manifest): prompts, candidate layers, the actadd comparison's multipliers, seeds."""

    vectors: str | None = option(None, help="candidate vectors (e.g. A/B vectors from 'train') instead of "
                                 "harmful-minus-harmless directions")
    harmful: str = opt("harmful")
    harmless: str = opt("harmless")
    neutral: str = opt("neutral")
    layers: list[int] | None = option(None, cli="layers", help="candidate layers (default all)")
    layer: int | None = option(None, help="skip selection and use this layer")
    multipliers: list[float] = option(factory=lambda: [-1.0, 1.0], cli="floats",
                                      help="actadd multipliers (default -1,1)")
    split_seed: int = option(0, min=0, max=MAX_SEED, expected=f"an integer 0..{MAX_SEED}",
                             help="seed of the selection/evaluation split of the prompts")
    seed: int = opt("seed")


@dataclass
class OrthogonalizeOptions:
    """`steerscale orthogonalize` besides the model options."""

    direction: str = option(None, required=True, help="vectors file (e.g. directions.safetensors from 'ablation')")
    direction_layer: int | None = option(None, help="layer of the direction (default: the file's selected_layer)")
    force: bool = option(False, help="replace a non-empty --out folder (atomically: the old folder stays intact "
                         "until the new one is complete)")
    allow_foreign_vectors: bool = option(False, help="use a direction file whose metadata names another model")


@dataclass
class ExportOptions:
    """`steerscale export`."""

    format: str = option("llama.cpp", choices=("llama.cpp",), help="output format")
    vectors: str = option(None, positional=True, help="vectors file from 'steerscale train'")
    output: str = option(None, positional=True, help="output .gguf file")
    layers: str | None = option(None, help="layers to write, e.g. 10-20 (default 1..n_layers-1)")
    multiplier: float = option(1.0, help="each written tensor is multiplier x vector[L]")
    model_hint: str | None = option(None, help="model type recorded in the file (default from the vectors)")


@dataclass
class ImportOptions:
    """`steerscale import`."""

    input: str = option(None, positional=True, help=".gguf or .safetensors file")
    n_layers: int = option(None, required=True, help="layer count of the model you will steer")


@dataclass
class TransferOptions:
    """`steerscale transfer` besides the (target) model and prompt options."""

    vectors: str = option(None, required=True, help="vectors made on --source-model")
    source_model: str = option(None, required=True, help="the model the vectors were made on")
    layers: list[int] = option(None, cli="layers", required=True,
                               help="source layer(s) to steer, e.g. 15, 12-14 or -1 (the last)")
    multiplier: float = option(4.0, help="multiplier on both models")
    map: str = option("relative", choices=("relative", "same"),
                      help="target layer for each source layer: by relative depth, or the same index")
    prompts: str = option("harmful-prompts", help="prompts: built-in name or JSON/JSONL file")
    limit: int | float | None = opt("limit", default=16)


@dataclass
class GenerateOptions:
    """`steerscale generate` besides the model and prompt options."""

    prompt: str = option(None, positional=True, help="the user message")
    vectors: str | None = option(None, help="vectors from 'steerscale train' (needed unless only --ablate)")
    ablate: str | None = option(None, metavar="DIRECTION_FILE", help="also show the answer with this direction "
                                "ablated at every layer (a vectors file; layer from its selected_layer or "
                                "--direction-layer), e.g. directions.safetensors from 'ablation'")
    direction_layer: int | None = option(None, help="layer of the --ablate file's direction")
    allow_foreign_vectors: bool = option(False, help="steer with vectors whose metadata names another model of "
                                         "the same shape")
    layers: list[int] | None = option(factory=lambda: [13], cli="layers", help="layer(s) to steer, e.g. 13, 12-14, "
                                      "0-29:3 (every 3rd) or -1 (the last)")
    multipliers: list[float] = option(factory=lambda: [-1.0, 1.0], cli="floats",
                                      help="comma list of multipliers to show beside the unsteered answer")
    positions: str = opt("positions")
    max_new_tokens: int = opt("max_new_tokens", default=60, help="tokens to generate (default 60)")


@dataclass
class ReproduceOptions:
    """`steerscale reproduce` (the run's settings are in its TOML config, ReproduceConfig)."""

    config: str | None = option(None, help="TOML config (default: the bundled configs/default.toml)")
    out: str = option("results/reproduce", short="-o", help="output folder (default results/reproduce)")
    force: bool = option(False, help="run every model again even if its results are complete")
    print_config: bool = option(False, help="print the default config and exit")
    only: str | None = option(None, metavar="NAME", help="run only the model NAME into its folder, no report (one "
                              "cluster node; docs/scaling_out.md)")


