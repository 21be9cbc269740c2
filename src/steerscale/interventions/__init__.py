"""Interventions other than addition: the refusal direction, its ablation and weight orthogonalisation.

Import names from the module that defines them; this package re-exports nothing."""
