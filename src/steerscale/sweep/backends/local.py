"""The in-process backend: the plan's units one after another, in this process (the default).

``run_sweep`` is this backend, holding the model it was given, driven by ``sweep.run.drive_sweep``.
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

from ...errors import SteerscaleError
from .base import Backend, Job, ModelRef, register_backend

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ...core.models import ModelInfo
    from ..plan import Unit


@register_backend("local")
class LocalBackend(Backend):
    """Loads the model once (or takes a loaded one) and runs ``units.run_unit`` for each unit.

    Every unit of the plan is handed to ``run`` (``reruns_finished_units``): a finished one computes nothing
    and reports the run's answer scheme and engine record, as ``run_sweep`` always has. It runs the screen
    (``screening.screened_sweep``) too."""

    can_screen = True
    reruns_finished_units = True

    def __init__(self, model: PreTrainedModel | None = None, tokenizer: PreTrainedTokenizerBase | None = None,
                 info: ModelInfo | None = None):
        self.model, self.tokenizer, self.info = model, tokenizer, info

    def describe(self) -> dict:
        return {"name": "local", "workers": 1}

    def planned_workers(self) -> int:
        return 1

    def start(self, ref: ModelRef | None) -> list[dict]:
        from ..units import package_versions

        if self.model is None:
            if ref is None:
                raise SteerscaleError("local backend: no model given and no model reference to load one from")
            from ...core.models import load_model

            self.model, self.tokenizer, self.info = load_model(ref.spec, dtype=ref.dtype, device=ref.device,
                                                               trust_remote_code=ref.trust_remote_code)
            if ref.name:
                self.info.name = ref.name
        elif self.info is None:
            from ...core.models import model_info

            self.info = model_info(self.model)
        return [{"info": self.info.to_dict(), "versions": package_versions(), "host": platform.node()}]

    def _engine(self, job: Job):
        from ...engines import get_engine

        if self.model is None:
            raise SteerscaleError("local backend: start() was not called")
        if hasattr(job.vectors, "check_model"):
            job.vectors.check_model(self.model)
        return get_engine(job.config.engine)

    def run(self, job: Job, units: list[Unit], store) -> list[dict]:
        from ..units import run_unit

        engine = self._engine(job)  # one engine for the whole run: its work counters add up over the units
        return [run_unit(self.model, self.tokenizer, job.vectors, job.items, job.config, self.info, u, store,
                         job.progress, engine) for u in units]

    def screen(self, job: Job, store, where: str) -> tuple[list[dict], list[dict], list[dict], dict]:
        from ..screening import screened_sweep

        return screened_sweep(self.model, self.tokenizer, job.vectors, job.items, job.config, self.info,
                              job.identity, store, job.progress, self._engine(job), where)

    def close(self) -> None:
        self.model = None
