"""The model side of the method: loading models, A/B items and prompts, batches, hooks, activations, steering vectors and the behaviour score.

Import names from the module that defines them; this package re-exports nothing."""
