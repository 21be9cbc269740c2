"""Interventions: the plug-in shape and registry (base.py: addition, ablation, baseline, one class each), the
comparison (compare.py), the refusal direction and its study (ablation.py, recipe.py), and weight
orthogonalisation (orthogonalize.py, the baked-in form of ablation).

Import names from the module that defines them; this package re-exports nothing."""
