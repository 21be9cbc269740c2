"""What the showcase builds and how (`ShowcaseConfig`): panels, dose-response multipliers and normalisation,
the ablation panel's direction layer and its choice, prompts. Fields carry defaults and help text; `validate()`
returns a checked copy (multipliers sorted with 0 added, panels in their fixed order) or raises a one-line
SteerscaleError naming the field. `steerscale reproduce` reads the `[showcase]` TOML table into it and fills
the `FROM_RUN` fields from the model's [sweep] and the [run] section.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ..errors import SteerscaleError

PANELS = ("dose", "openended", "ablation")
# fields that `steerscale reproduce` fills from the model's [sweep] and the [run] section, not from [showcase]
FROM_RUN = ("template", "system", "positions", "batch_size", "val_fraction", "n_bootstrap", "seed")

def _help(default, text: str, **kw):
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": text}, **kw)
    return field(default=default, metadata={"help": text}, **kw)


@dataclass
class ShowcaseConfig:
    """What the showcase measures. Every field has a default; ``validate()`` checks types and ranges."""

    panels: list[str] = _help(list(PANELS), "panels to build, any of dose, openended, ablation")
    dose_layers: list[int] | None = _help(None, "layers of the dose-response panel; None = the A/B sweep's peak "
                                                "layers, chosen on its validation items (needs <folder>/items.csv)")
    dose_multipliers: list[float] = _help([-0.5, -0.25, -0.125, 0.0, 0.125, 0.25, 0.5],
                                          "multipliers of the dose-response panel (0 is added: the baseline)")
    dose_controls: int = _help(3, "random directions of the vector's norm at each dose layer, measured at the same "
                                  "multipliers as a control (showcase_control; 0 = none)")
    dose_normalize: str = _help("residual", "vector normalisation for the dose panel: none, unit, residual "
                                            "(m = fraction of the layer's mean residual norm)")
    ablation_layer: int | None = _help(None, "layer of the refusal direction in the ablation panel; None = chosen "
                                             "on the validation prompts (interventions.select_layer)")
    ablation_candidates: list[int] | None = _help(None, "candidate layers for that choice; None = every "
                                                        "(n_layers // 10)-th layer from n_layers // 5 up to the "
                                                        "last 20% (6, 9, ..., 21 on 30 layers)")
    ablation_kl_threshold: float | None = _help(0.5, "capability bound of the choice: candidates whose ablation "
                                                     "moves harmless next-token distributions by more KL are "
                                                     "dropped (refusal_direction uses 0.1, too tight for 135M)")
    ablation_induce_threshold: float | None = _help(0.0, "induce-refusal filter of the choice (refusal_direction's): "
                                                         "candidates whose addition (x1) leaves harmless refusal "
                                                         "log-odds below this are dropped; None = filter off")
    ablation_multipliers: list[float] = _help([-1.0, 1.0], "actadd multipliers (x the raw direction) in the "
                                                           "ablation panel")
    harmful: str = _help("harmful-prompts", "harmful prompts (built-in name or JSON/JSONL file)")
    harmless: str = _help("harmless-prompts", "harmless prompts (built-in name or JSON/JSONL file)")
    neutral: str = _help("neutral-text", "neutral paragraphs for the CE cost")
    n_neutral: int = _help(6, "neutral paragraphs for the CE cost (0 = no CE)")
    behaviour: str = _help("refusal", "what the A/B items' matching answer is, for labels and captions")
    template: str = _help("chat", "prompt template: chat, llama2 or plain (the A/B sweep's)")
    system: str | None = _help(None, "system prompt (the A/B sweep's)")
    positions: str = _help("all", "steered positions in the dose panel: all or instruction_end (the A/B sweep's)")
    batch_size: int = _help(8, "batch size")
    val_fraction: float = _help(0.5, "share of A/B items used to choose layers ([run] val_fraction)")
    n_bootstrap: int = _help(1000, "bootstrap resamples for every interval")
    seed: int = _help(0, "bootstrap and split seed")

    def validate(self) -> "ShowcaseConfig":
        from ..config import MAX_BATCH, MAX_BOOTSTRAP, MAX_MULTIPLIER, MAX_SEED
        from ..core.steering import POSITIONS
        from ..core.vectors import NORMALIZATIONS

        def fail(name, value, expected):
            raise SteerscaleError(f"showcase {name} {value!r}: expected {expected}")

        for p in self.panels:
            if p not in PANELS:
                fail("panels", p, f"any of {', '.join(PANELS)}")
        for name in ("dose_multipliers", "ablation_multipliers"):
            vals = getattr(self, name)
            if not isinstance(vals, list) or not all(_num(m) and abs(m) <= MAX_MULTIPLIER for m in vals):
                fail(name, vals, f"a list of finite numbers within +-{MAX_MULTIPLIER:g}")
        for name in ("dose_layers", "ablation_candidates"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, list) and v and all(_int(l, 0) for l in v)):
                fail(name, v, "a non-empty list of layer indices, or None")
        if self.ablation_layer is not None and not _int(self.ablation_layer, 0):
            fail("ablation_layer", self.ablation_layer, "a layer index or None")
        if self.ablation_kl_threshold is not None and not (_num(self.ablation_kl_threshold)
                                                           and self.ablation_kl_threshold > 0):
            fail("ablation_kl_threshold", self.ablation_kl_threshold, "a number > 0, or None (no bound)")
        if self.ablation_induce_threshold is not None and not _num(self.ablation_induce_threshold):
            fail("ablation_induce_threshold", self.ablation_induce_threshold, "a number, or None (filter off)")
        if self.dose_normalize not in NORMALIZATIONS:
            fail("dose_normalize", self.dose_normalize, f"one of {', '.join(NORMALIZATIONS)}")
        if self.positions not in POSITIONS:
            fail("positions", self.positions, f"one of {', '.join(POSITIONS)}")
        for name, low, high in (("batch_size", 1, MAX_BATCH), ("n_bootstrap", 0, MAX_BOOTSTRAP), ("seed", 0, MAX_SEED),
                                ("n_neutral", 0, 100_000), ("dose_controls", 0, 1000)):
            if not (_int(getattr(self, name), low) and getattr(self, name) <= high):
                fail(name, getattr(self, name), f"an integer {low}..{high}")
        if not (_num(self.val_fraction) and 0 < self.val_fraction < 1):
            fail("val_fraction", self.val_fraction, "a number in (0, 1)")
        mults = sorted({float(m) + 0.0 for m in self.dose_multipliers} | {0.0})
        return ShowcaseConfig(**dict(asdict(self), dose_multipliers=mults,
                                     panels=[p for p in PANELS if p in self.panels]))

    @classmethod
    def from_dict(cls, d: dict, where: str = "[showcase]") -> "ShowcaseConfig":
        """A config from a TOML/JSON table; unknown keys are refused with their name."""
        known = {f.name for f in fields(cls)}
        for k in d:
            if k not in known:
                raise SteerscaleError(f"{where}: unknown key {k!r} (known: {', '.join(sorted(known))})")
        return cls(**d).validate()


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int(x, low: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low
