"""What the showcase builds and how (`ShowcaseConfig`): panels, dose-response multipliers and normalisation,
the ablation panel's direction layer and its choice, prompts. Fields carry defaults and help text; `validate()`
returns a checked copy (multipliers sorted with 0 added, panels in their fixed order) or raises a one-line
SteerscaleError naming the field. The fields are declared with steerscale.config's helpers (``option``/``opt``:
one field table, one set of checks). `steerscale reproduce` reads the `[showcase]` TOML table into it and fills
the `FROM_RUN` fields from the model's [sweep] and the [run] section.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..config import check_fields, check_multipliers, check_val_fraction, opt, option
from ..errors import SteerscaleError

PANELS = ("dose", "openended", "ablation")
# fields that `steerscale reproduce` fills from the model's [sweep] and the [run] section, not from [showcase]
FROM_RUN = ("template", "system", "positions", "batch_size", "val_fraction", "n_bootstrap", "seed")


@dataclass
class ShowcaseConfig:
    """What the showcase measures. Every field has a default (steerscale.config's field helpers: a shared option
    is the same field as in the sweep); ``validate()`` checks types and ranges."""

    panels: list[str] = option(factory=lambda: list(PANELS), help="panels to build, any of dose, openended, ablation")
    dose_layers: list[int] | None = option(None, help="layers of the dose-response panel; None = the A/B sweep's peak "
                                           "layers, chosen on its validation items (needs <folder>/items.csv)")
    dose_multipliers: list[float] = option(factory=lambda: [-0.5, -0.25, -0.125, 0.0, 0.125, 0.25, 0.5],
                                           help="multipliers of the dose-response panel (0 is added: the baseline)")
    dose_controls: int = option(3, min=0, max=1000, help="random directions of the vector's norm at each dose layer, "
                                "measured at the same multipliers as a control (showcase_control; 0 = none)")
    dose_normalize: str = opt("normalize", default="residual", help="vector normalisation for the dose panel: none, "
                              "unit, residual (m = fraction of the layer's mean residual norm)")
    ablation_layer: int | None = option(None, min=0, help="layer of the refusal direction in the ablation panel; None "
                                        "= chosen on the validation prompts (interventions.select_layer)")
    ablation_candidates: list[int] | None = option(None, help="candidate layers for that choice; None = every "
                                                   "(n_layers // 10)-th layer from n_layers // 5 up to the last 20% "
                                                   "(6, 9, ..., 21 on 30 layers)")
    ablation_kl_threshold: float | None = option(0.5, help="capability bound of the choice: candidates whose ablation "
                                                 "moves harmless next-token distributions by more KL are dropped "
                                                 "(refusal_direction uses 0.1, too tight for 135M)")
    ablation_induce_threshold: float | None = option(0.0, help="induce-refusal filter of the choice "
                                                     "(refusal_direction's): candidates whose addition (x1) leaves "
                                                     "harmless refusal log-odds below this are dropped; None = filter "
                                                     "off")
    ablation_multipliers: list[float] = option(factory=lambda: [-1.0, 1.0], help="actadd multipliers (x the raw "
                                               "direction) in the ablation panel ([] = no actadd)")
    harmful: str = opt("harmful")
    harmless: str = opt("harmless")
    neutral: str = opt("neutral", help="neutral paragraphs for the CE cost")
    n_neutral: int = opt("n_neutral", default=6, max=100_000, help="neutral paragraphs for the CE cost (0 = no CE)")
    behaviour: str = option("refusal", help="what the A/B items' matching answer is, for labels and captions")
    template: str = opt("template", help="prompt template: chat, llama2 or plain (the A/B sweep's)")
    system: str | None = opt("system", help="system prompt (the A/B sweep's)")
    positions: str = opt("positions", help="steered positions in the dose panel: all or instruction_end (the A/B "
                         "sweep's)")
    batch_size: int = opt("batch_size", help="batch size")
    val_fraction: float = opt("val_fraction", help="share of A/B items used to choose layers ([run] val_fraction)")
    n_bootstrap: int = opt("n_bootstrap")
    seed: int = opt("seed", help="bootstrap and split seed")

    def validate(self) -> "ShowcaseConfig":
        """A checked copy: dose multipliers sorted (the panel's table lists doses ascending) with 0 added,
        ablation multipliers as given, panels in their fixed order. Raises
        a one-line SteerscaleError 'showcase <field> <value>: expected ...'."""

        def label(name):
            return f"showcase {name}"

        def fail(name, value, expected):
            raise SteerscaleError(f"{label(name)} {value!r}: expected {expected}")

        for p in self.panels:
            if p not in PANELS:
                fail("panels", p, f"any of {', '.join(PANELS)}")
        # an empty list is allowed: the baseline alone (dose; 0 is added) or no actadd condition (ablation).
        # The ablation multipliers are only checked: the panel's identity and manifest keep them as written.
        dose, _ = ([] if _empty(getattr(self, n)) else check_multipliers(getattr(self, n), label(n))
                   for n in ("dose_multipliers", "ablation_multipliers"))
        for name in ("dose_layers", "ablation_candidates"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, list) and v and all(_layer(l) for l in v)):
                fail(name, v, "a non-empty list of layer indices, or None")
        if self.ablation_kl_threshold is not None and not (_num(self.ablation_kl_threshold)
                                                           and self.ablation_kl_threshold > 0):
            fail("ablation_kl_threshold", self.ablation_kl_threshold, "a number > 0, or None (no bound)")
        check_fields(self, ("ablation_layer", "ablation_induce_threshold", "dose_normalize", "template", "positions",
                            "batch_size", "n_bootstrap", "seed", "n_neutral", "dose_controls"), label)
        check_val_fraction(self.val_fraction, label("val_fraction"))
        return ShowcaseConfig(**dict(asdict(self), dose_multipliers=sorted(set(dose) | {0.0}),
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
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) != float("inf")


def _layer(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _empty(x) -> bool:
    return isinstance(x, (list, tuple)) and len(x) == 0
