"""Work units of a sweep and the shard plan that makes them.

A *unit* is the work one process (a SLURM array task, a Ray actor call) does for one model and one
behaviour: a contiguous shard of the evaluation items, a set of layers, every multiplier. A *plan*
splits a sweep into ``n_shards`` units, deterministically (same inputs, same units):

1. **Item shards first.** Every item is scored at every point exactly once, so splitting items repeats
   no work. Shards are contiguous, sizes differ by at most one, and each keeps at least one full batch
   (``batch_size`` items), since smaller shards waste an accelerator's batch. Item shards change batch
   composition, so scores agree with an unsharded run to about 1e-5 (float rounding), not bit for bit.
2. **Layer groups** only in all-positions mode, and only when there are more shards than item shards:
   each group walks its own unsteered pass (about one pass per group, docs/cost_model.md); in
   instruction-end mode the unsteered pass is the whole cost, so splitting layers would multiply it, and
   the plan uses item shards only. Groups are balanced by the cost model: a steered point at layer l
   reruns layers l+1..L-1, so late layers are cheap; layers are dealt, most expensive first, to the
   group with the least work so far (longest-processing-time rule), which gives strided, not
   contiguous, groups. Layer groups give the same bytes as an unsharded run.
3. The group holding the deepest swept layer of an item shard *owns its baseline*: its walk reaches
   that layer anyway, so it computes the unsteered scores and writes the multiplier-0 points of every
   layer of its item shard (as the serial run does); the other groups skip multiplier 0.

``n_shards = item_shards x layer_groups``; unit k (1-based) is item shard (k-1) // groups, group (k-1) % groups.
The plan (``ShardPlan.to_dict``) is part of the run identity (run.json): shards change batch composition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SteerscaleError

PLAN_VERSION = 1
HEAD_COST = 0.002  # one head row relative to one pass (rho in docs/cost_model.md): the cost of a last-layer point


@dataclass(frozen=True)
class Unit:
    """One unit of work: items [item_start, item_stop) at `layers`, every multiplier."""

    index: int  # 1-based, as in --shard index/n_shards
    n_shards: int
    item_shard: int  # 0-based
    n_item_shards: int
    item_start: int
    item_stop: int
    layers: tuple[int, ...]
    owns_baseline: bool

    @property
    def tag(self) -> str:
        return f"{self.index}of{self.n_shards}"

    @property
    def part(self) -> str | None:
        """The item-shard tag its point files carry (None when the run has one item shard)."""
        if self.n_item_shards == 1:
            return None
        return f"i{self.item_shard + 1:03d}of{self.n_item_shards:03d}"

    def to_dict(self) -> dict:
        return {"index": self.index, "n_shards": self.n_shards, "items": [self.item_start, self.item_stop],
                "item_shard": self.item_shard, "n_item_shards": self.n_item_shards, "layers": list(self.layers), "owns_baseline": self.owns_baseline}


@dataclass(frozen=True)
class ShardPlan:
    n_shards: int
    item_shards: int
    layer_groups: int
    units: tuple[Unit, ...]

    def to_dict(self) -> dict:
        """What goes into the run identity (the units follow from it and the rest of the identity)."""
        return {"version": PLAN_VERSION, "n_shards": self.n_shards, "item_shards": self.item_shards,
                "layer_groups": self.layer_groups}

    def unit(self, index: int) -> Unit:
        if not 1 <= index <= self.n_shards:
            raise SteerscaleError(f"--shard {index}/{self.n_shards}: expected an index from 1 to {self.n_shards}")
        return self.units[index - 1]

    def parts(self) -> list[str | None]:
        return [u.part for u in self.units if u.owns_baseline]


def parse_shard(text: str) -> tuple[int, int]:
    """'3/16' -> (3, 16); a one-line error otherwise."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", str(text))
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise SteerscaleError(f"--shard {text!r}: expected INDEX/COUNT with 1 <= INDEX <= COUNT, e.g. 3/16")
    return int(m[1]), int(m[2])


def layer_cost(layer: int, n_layers: int) -> float:
    """Passes per item and steered multiplier for a point at `layer` (all positions; docs/cost_model.md)."""
    return (n_layers - 1 - layer) / n_layers + HEAD_COST


def balance_layers(layers: list[int], n_layers: int, n_groups: int) -> list[tuple[int, ...]]:
    """Deal `layers` into `n_groups` groups of near-equal cost (longest processing time first).

    Each group also pays about one unsteered pass (its walk), the same for every group, so only the
    tails are balanced. Ties go to the lower group index: deterministic.
    """
    groups: list[list[int]] = [[] for _ in range(n_groups)]
    load = [0.0] * n_groups
    for l in sorted(layers, key=lambda l: (-layer_cost(l, n_layers), l)):
        g = min(range(n_groups), key=lambda i: (round(load[i], 12), len(groups[i]), i))
        groups[g].append(l)
        load[g] += layer_cost(l, n_layers)
    return [tuple(sorted(g)) for g in groups]


def make_plan(n_items: int, layers: list[int], n_layers: int, positions: str, n_shards: int = 1,
              batch_size: int = 8) -> ShardPlan:
    """The deterministic plan of `n_shards` units for a sweep (see the module docstring)."""
    layers = sorted(set(int(l) for l in layers))
    if n_shards < 1:
        raise SteerscaleError(f"shards {n_shards}: expected a positive number")
    if n_items < 1 or not layers:
        raise SteerscaleError("a plan needs at least one item and one layer")
    min_items = min(batch_size, n_items)
    if positions == "all":
        fits = [d for d in range(1, n_shards + 1) if n_shards % d == 0 and n_items // d >= min_items
                and n_shards // d <= len(layers)]
        if not fits:
            raise SteerscaleError(
                f"{n_shards} shards: {n_items} items and {len(layers)} layers cannot be split that many ways "
                f"(item shards keep at least {min_items} items, one batch; layer groups at least one layer); "
                f"use at most {(n_items // min_items) * len(layers)} shards, or a count that divides evenly")
        n_item = max(fits)
    else:
        if n_shards > n_items:
            raise SteerscaleError(f"{n_shards} shards: only {n_items} items to split (instruction-end mode "
                                  f"splits items only); use at most {n_items} shards")
        n_item = n_shards
    n_groups = n_shards // n_item
    groups = balance_layers(layers, n_layers, n_groups)
    deepest = max(layers)
    units = []
    for i in range(n_item):
        start, stop = (i * n_items) // n_item, ((i + 1) * n_items) // n_item
        for g, grp in enumerate(groups):
            units.append(Unit(index=i * n_groups + g + 1, n_shards=n_shards, item_shard=i, n_item_shards=n_item,
                              item_start=start, item_stop=stop, layers=grp, owns_baseline=deepest in grp))
    return ShardPlan(n_shards, n_item, n_groups, tuple(units))
