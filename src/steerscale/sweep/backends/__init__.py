"""Where a sweep's work units run: one contract (``base.Backend``), several backends, one driver.

``base.py`` holds the contract, the job every unit is handed (``Job``, ``ModelRef``), the registry
``BACKENDS`` and ``get_backend(name, **kw)``. Each backend registers itself where it is defined:

- ``local`` (local.py, the default): the units one after another in this process (``run_sweep`` is this
  backend holding the model it was given);
- ``ray`` (ray.py): the same ``units.run_unit`` in Ray actors, one per model replica (Ray is imported only
  when a Ray backend is made: ``pip install 'steerscale[ray]'``).

``sweep.run.drive_sweep`` is the one driver every backend shares: it builds the identity and plan, holds
the shard locks, skips finished units, checks that every worker runs the same package versions, builds
the tables from the store alone and writes the manifest. To add a backend: subclass ``base.Backend``,
decorate it with ``@register_backend("name")``, and import its module here.

Import names from the module that defines them; this package re-exports nothing.
"""

from . import local, ray  # noqa: F401  (each registers its backend in base.BACKENDS)
