"""The showcase panels: what a small model can show about steering, measured.

Import names from the module that defines them; this package re-exports nothing."""
