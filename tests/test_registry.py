"""The one plug-in shape (steerscale/registry.py): engines, backends and interventions are each a Registry of
classes of one base, filled by a decorator, looked up with a one-line error naming the valid keys in order."""

from __future__ import annotations

import pytest

from steerscale.engines import ENGINES, get_engine
from steerscale.engines.base import Engine
from steerscale.errors import SteerscaleError
from steerscale.interventions.base import INTERVENTIONS, Intervention
from steerscale.registry import Registry
from steerscale.sweep.backends.base import BACKENDS, Backend


class Part:
    def __init__(self, size: int = 1):
        self.size = size


def test_register_create_and_the_error_naming_the_keys_in_order():
    reg = Registry("part", Part, label="--part")
    for name in ("b", "a"):
        reg.register(name)(type(f"P{name}", (Part,), {}))
    assert list(reg) == ["b", "a"] and reg["a"].name == "a"
    made = reg.create("b", size=3)
    assert isinstance(made, reg["b"]) and made.size == 3
    for bad in ("c", None, ["a"]):
        with pytest.raises(SteerscaleError) as e:
            reg.create(bad)
        assert str(e.value) == f"--part {bad!r}: expected one of b, a"


def test_only_subclasses_register_and_a_taken_name_stays_taken():
    reg = Registry("part", Part)
    first = reg.register("x")(type("X", (Part,), {}))
    assert reg.register("x")(first) is first  # the same class again: nothing changes
    with pytest.raises(SteerscaleError, match=r"^part 'x' is already registered \(X\)$"):
        reg.register("x")(type("Y", (Part,), {}))
    with pytest.raises(SteerscaleError, match=r"^part 'z': <class 'dict'> is not a subclass of Part$"):
        reg.register("z")(dict)
    assert list(reg) == ["x"] and reg["x"] is first


def test_the_three_families_share_the_shape():
    for reg, base, first in ((ENGINES, Engine, "fast"), (BACKENDS, Backend, "local"),
                             (INTERVENTIONS, Intervention, "baseline")):
        assert isinstance(reg, Registry) and reg.base is base and list(reg)[0] == first
        assert all(issubclass(c, base) and c.name == n for n, c in reg.items())
    assert type(get_engine("naive")).__name__ == "NaiveEngine"
    with pytest.raises(SteerscaleError, match=r"^engine 'slow': expected one of fast, naive$"):
        get_engine("slow")
