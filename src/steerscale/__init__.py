"""steerscale: Contrastive Activation Addition (CAA) steering, swept over layers and multipliers, across model sizes."""

from ._version import __version__

from .core.data import ABItem, load_dataset, load_prompts
from .errors import SteerscaleError
from .core.evaluate import ab_scores, generate
from .core.models import ModelInfo, get_layers, load_model, model_info, register_architecture
from .core.interop import export_llama_cpp, import_vectors
from .interventions.ablation import refusal_directions, run_ablation_study, select_layer
from .interventions.compare import compare_interventions
from .interventions.orthogonalize import orthogonalize, save_orthogonalized
from .core.steering import ablate, capture, steer
from .sweep.run import SweepConfig, SweepResult, run_sweep
from .core.vectors import SteeringVectors
from .core.pairs import train_vectors

sweep = run_sweep

__all__ = [
    "ABItem", "ModelInfo", "SteerscaleError", "SteeringVectors", "SweepConfig", "SweepResult",
    "ab_scores", "ablate", "capture", "compare_interventions", "export_llama_cpp", "generate", "get_layers",
    "import_vectors", "load_dataset", "load_model", "load_prompts", "model_info", "orthogonalize",
    "refusal_directions", "register_architecture", "run_ablation_study", "run_sweep", "save_orthogonalized",
    "select_layer", "steer", "sweep", "train_vectors",
]
