"""The one plug-in shape: a name -> class table for a family of interchangeable parts (engines, backends,
interventions), with the decorator that fills it and the lookup that makes one.

Contract:

* ``Registry(family, base, label=...)`` is a ``dict`` of name -> class, in registration order (the first is the
  family's default where it has one), so ``list(REG)``, ``name in REG`` and ``REG[name]`` read as before.
* ``REG.register(name)`` is a class decorator: the class must subclass `base`; it gets ``cls.name = name``; a
  name already taken by another class is refused (registering the same class again is a no-op).
* ``REG.create(name, **kw)`` is ``REG[name](**kw)``; an unknown (or non-string) name is one line,
  ``<label> 'name': expected one of a, b, c``, naming the valid keys in order.

Every error is a :class:`SteerscaleError`. The families: ``engines.ENGINES`` (``engines/base.Engine``),
``sweep.backends.base.BACKENDS`` (``Backend``), ``interventions.base.INTERVENTIONS`` (``Intervention``).
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import SteerscaleError

T = TypeVar("T", bound=type)


class Registry(dict, Generic[T]):
    """name -> class for one family of plug-ins; see the module docstring for the contract."""

    def __init__(self, family: str, base: type, label: str | None = None):
        super().__init__()
        self.family, self.base, self.label = family, base, label or family

    def register(self, name: str) -> Callable[[T], T]:
        def add(cls: T) -> T:
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise SteerscaleError(f"{self.family} {name!r}: {cls!r} is not a subclass of {self.base.__name__}")
            if name in self and self[name] is not cls:
                raise SteerscaleError(f"{self.family} {name!r} is already registered ({self[name].__name__})")
            cls.name = name
            self[name] = cls
            return cls

        return add

    def create(self, name: str, **kwargs):
        """A new instance of the class registered as `name`, built with `kwargs`."""
        try:
            cls = self[name]
        except (KeyError, TypeError):
            raise SteerscaleError(f"{self.label} {name!r}: expected one of {', '.join(self)}") from None
        return cls(**kwargs)
