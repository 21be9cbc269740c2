"""The intervention plug-in: one class per way of changing a model's forward pass, and a name -> class registry.

Contract (``Intervention``): an instance holds what the kind needs besides the model and the direction (a
multiplier, a scale, ...); ``apply(model, direction, layer)`` is a context manager that changes the forward
pass while active and always puts the model back, also when the body raises. It does so only through the
context managers of ``core/steering.py`` (``steer``, ``ablate``, ``layer_hooks``), the one module that touches
the model's parts. ``direction`` is the [hidden] vector of the chosen layer (``vectors[layer]``); ``layer`` is
that layer's index. ``compare_interventions`` (interventions/ablation.py) measures every condition the same
way: it enters ``apply`` and runs its measures inside.

Each instance names its condition (the ``condition`` column of the tables: ``"baseline"``, ``"ablation"``,
``"actadd+2"``), the ``multiplier`` column and whether the ``layer`` column records the layer
(``records_layer``); ``definition_key``/``definition`` is the line the manifest's ``definitions`` block gets.

Built in: ``baseline`` (no change), ``ablation`` (directional ablation of the direction at every layer),
``addition`` (activation addition, ``multiplier x direction`` at the layer; the negated direction is an
``addition`` with a negative multiplier, not a kind of its own). A new kind is one class here or anywhere::

    @register_intervention("scaled_addition")
    class ScaledAddition(Addition):
        ...

and ``compare_interventions(..., interventions=[Baseline(), ScaledAddition(2.0)])`` measures it.

Weight orthogonalisation (interventions/orthogonalize.py) is not an ``Intervention``: it is a weight edit
that writes a new model, not a hook that comes off. It is the baked-in form of ``ablation`` (every
residual-writing weight projected off the direction), and it checks itself against hooked ablation at run
time (logits on a probe must agree), and
tests/interventions/test_ablation.py::test_orthogonalized_equals_hooked_ablation checks the two agree.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Callable, ClassVar, Iterator, Sequence

from ..core.steering import ablate, steer
from ..errors import SteerscaleError
from ..registry import Registry

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel


class Intervention(ABC):
    """One way of changing the forward pass, applied as a context manager (see the module doc)."""

    name: ClassVar[str] = ""  # registry key, set by register_intervention
    definition_key: ClassVar[str] = ""  # key in the manifest's "definitions" block ("" = none)
    definition: ClassVar[str] = ""
    records_layer: ClassVar[bool] = True  # the tables' layer column holds the direction's layer

    multiplier: float = 0.0  # the tables' multiplier column (0.0 for kinds without one)

    @property
    @abstractmethod
    def condition(self) -> str:
        """The row label of this condition in the tables (unique within one comparison)."""

    @abstractmethod
    def apply(self, model: PreTrainedModel, direction: torch.Tensor, layer: int) -> AbstractContextManager:
        """A context manager: the forward pass of `model` is changed while active and restored after, also
        when the body raises; built only on core/steering.py's context managers."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.condition!r})"


INTERVENTIONS: Registry[type[Intervention]] = Registry("intervention", Intervention)  # steerscale/registry.py


def register_intervention(name: str) -> Callable[[type[Intervention]], type[Intervention]]:
    """Class decorator: ``INTERVENTIONS[name] = cls`` and ``cls.name = name``; a taken name is refused."""
    return INTERVENTIONS.register(name)


def get_intervention(name: str, **kwargs) -> Intervention:
    """An instance of the intervention registered as `name`, built with `kwargs` (e.g. ``multiplier=2.0``); an
    unknown name is one line naming the valid keys."""
    return INTERVENTIONS.create(name, **kwargs)


def as_interventions(items: Sequence[Intervention | str]) -> list[Intervention]:
    """Intervention objects, names from the registry (built with their defaults) turned into objects; refuses
    two conditions with the same label."""
    out = [get_intervention(i) if isinstance(i, str) else i for i in items]
    for i in out:
        if not isinstance(i, Intervention):
            raise SteerscaleError(f"intervention {i!r}: expected an Intervention or one of {', '.join(INTERVENTIONS)}")
    labels = [i.condition for i in out]
    dup = sorted({c for c in labels if labels.count(c) > 1})
    if dup:
        raise SteerscaleError(f"interventions: condition {dup[0]!r} appears twice; each condition must be unique")
    return out


def _finite(m) -> float:
    """The one check of an addition's multiplier (compare_interventions' rule since it has had one)."""
    if not isinstance(m, (int, float)) or not math.isfinite(m):
        raise SteerscaleError(f"multiplier {m!r}: expected a finite number")
    return float(m)


@register_intervention("baseline")
class Baseline(Intervention):
    """No change: the reference every other condition's delta is taken against."""

    records_layer = False

    @property
    def condition(self) -> str:
        return "baseline"

    def apply(self, model: PreTrainedModel, direction: torch.Tensor, layer: int) -> AbstractContextManager:
        return nullcontext()


@register_intervention("ablation")
class Ablation(Intervention):
    """Directional ablation (``core.steering.ablate``): the direction's unit vector is removed from the residual
    entering layer 0 and from every attention and MLP output, at every layer and position."""

    definition_key = "ablation"
    definition = ("x <- x - (x.r)r with r = vector[layer]/|vector[layer]|, on the residual entering layer 0 and "
                  "on every attention and MLP output (the residual stream never holds r); every position")

    @property
    def condition(self) -> str:
        return "ablation"

    @contextmanager
    def apply(self, model: PreTrainedModel, direction: torch.Tensor, layer: int) -> Iterator[None]:
        with ablate(model, direction):
            yield


@register_intervention("addition")
class Addition(Intervention):
    """Activation addition (``core.steering.steer``): ``multiplier x direction`` added to the output of decoder
    layer `layer`, every position. Condition label ``actadd{multiplier:+g}``."""

    definition_key = "actadd"
    definition = "multiplier x vector[layer] added to the output of decoder layer `layer`, every position"

    def __init__(self, multiplier: float = 1.0):
        self.multiplier = _finite(multiplier)

    @property
    def condition(self) -> str:
        return f"actadd{self.multiplier:+g}"

    @contextmanager
    def apply(self, model: PreTrainedModel, direction: torch.Tensor, layer: int) -> Iterator[None]:
        with steer(model, {layer: direction}, [layer], self.multiplier):
            yield


# the default multipliers of a comparison; `resolve_conditions` tells "not given" by identity with this object
DEFAULT_MULTIPLIERS = (-1.0, 1.0)


def default_interventions(multipliers: Sequence[float]) -> list[Intervention]:
    """The standard comparison: baseline, ablation, and one addition per non-zero multiplier (in order); every
    multiplier must be a finite number, zero included."""
    checked = [_finite(m) for m in multipliers]
    return [Baseline(), Ablation()] + [Addition(m) for m in checked if m != 0]


def resolve_conditions(multipliers: Sequence[float] | None, interventions: Sequence[Intervention | str] | None
                       ) -> tuple[list[Intervention], list[float]]:
    """(the conditions of a comparison, the multipliers its manifest records). Either `multipliers` (default
    -1, 1; each a finite number): ``default_interventions``; or `interventions` (objects or registry names,
    one of them the baseline): the multipliers recorded are theirs that are non-zero. Not both."""
    if interventions is not None and multipliers is not None and multipliers is not DEFAULT_MULTIPLIERS:
        raise SteerscaleError("compare_interventions: give multipliers or interventions, not both (an addition's "
                              "multiplier is part of the intervention: Addition(multiplier))")
    if interventions is None:
        multipliers = DEFAULT_MULTIPLIERS if multipliers is None else multipliers
        return default_interventions(multipliers), list(multipliers)
    conditions = as_interventions(interventions)
    if "baseline" not in [c.condition for c in conditions]:
        raise SteerscaleError("compare_interventions: the interventions need a 'baseline' condition (the deltas "
                              "are taken against it)")
    return conditions, [c.multiplier for c in conditions if c.multiplier != 0]


def definitions_of(conditions: Sequence[Intervention]) -> dict[str, str]:
    """The manifest's definitions of the interventions: ablation's and addition's always (the comparison's
    standard pair), then those of any other kind among `conditions`."""
    out = {Ablation.definition_key: Ablation.definition, Addition.definition_key: Addition.definition}
    out.update({c.definition_key: c.definition for c in conditions if c.definition_key and c.definition_key not in out})
    return out


__all__ = ["Intervention", "INTERVENTIONS", "register_intervention", "get_intervention", "as_interventions",
           "default_interventions", "resolve_conditions", "definitions_of", "Baseline", "Ablation", "Addition"]
