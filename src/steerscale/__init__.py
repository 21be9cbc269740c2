"""steerscale: Contrastive Activation Addition (CAA) steering, swept over layers and multipliers, across model sizes."""

__version__ = "0.1.0"

from .data import ABItem, load_dataset, load_prompts
from .errors import SteerscaleError
from .evaluate import ab_scores, generate
from .models import ModelInfo, get_layers, load_model, model_info, register_architecture
from .steering import capture, steer
from .sweep import SweepConfig, SweepResult, run_sweep
from .vectors import SteeringVectors, train_vectors

sweep = run_sweep

__all__ = [
    "ABItem", "ModelInfo", "SteerscaleError", "SteeringVectors", "SweepConfig", "SweepResult",
    "ab_scores", "capture", "generate", "get_layers", "load_dataset", "load_model", "load_prompts",
    "model_info", "register_architecture", "run_sweep", "steer", "sweep", "train_vectors",
]
