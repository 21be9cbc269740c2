"""The in-process backend: the plan's units one after another, in this process (the default)."""

from __future__ import annotations

import platform

from ...errors import SteerscaleError


class LocalBackend:
    """Loads the model once (or takes a loaded one) and runs ``units.run_unit`` for each unit."""

    def __init__(self, model=None, tokenizer=None, info=None):
        self.model, self.tokenizer, self.info = model, tokenizer, info

    def describe(self) -> dict:
        return {"name": "local", "workers": 1}

    def planned_workers(self) -> int:
        return 1

    def start(self, ref) -> list[dict]:
        from ..units import package_versions

        if self.model is None:
            from ...core.models import load_model

            self.model, self.tokenizer, self.info = load_model(ref.spec, dtype=ref.dtype, device=ref.device,
                                                               trust_remote_code=ref.trust_remote_code)
            if ref.name:
                self.info.name = ref.name
        return [{"info": self.info.to_dict(), "versions": package_versions(), "host": platform.node()}]

    def run(self, job, units, store) -> list[dict]:
        from ...engines import get_engine
        from ..units import run_unit

        if self.model is None:
            raise SteerscaleError("local backend: start() was not called")
        if hasattr(job.vectors, "check_model"):
            job.vectors.check_model(self.model)
        engine = get_engine(job.config.engine)
        return [run_unit(self.model, self.tokenizer, job.vectors, job.items, job.config, self.info, u, store,
                         job.progress, engine) for u in units]

    def close(self) -> None:
        self.model = None
