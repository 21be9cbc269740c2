"""The reproduce run: a TOML config of models and settings, run end to end into one report.

Import names from the module that defines them; this package re-exports nothing."""
