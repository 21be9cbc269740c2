"""The sweep over layers x multipliers: the run, its units and plan, its tables, and the backends that execute it (local, Ray).

Import names from the module that defines them; this package re-exports nothing."""
