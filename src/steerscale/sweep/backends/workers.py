"""What the workers of a cluster run report when they start: the same package versions and model everywhere."""

from __future__ import annotations

from ...errors import SteerscaleError


def check_workers(hellos: list[dict], versions: dict):
    """The ModelInfo every worker loaded (they must agree), after checking their package versions."""
    from ...core.models import ModelInfo
    from ..units import check_versions

    if not hellos:
        raise SteerscaleError("no worker could be started")
    for h in hellos:
        check_versions(h["versions"], versions, f"worker on host {h.get('host')}")
    key = lambda h: {k: v for k, v in h["info"].items() if k != "device"}  # noqa: E731
    for h in hellos[1:]:
        if key(h) != key(hellos[0]):
            raise SteerscaleError(f"workers loaded different models: {key(hellos[0])} vs {key(h)} "
                                  f"(host {h.get('host')}); every node must see the same model files")
    return ModelInfo(**hellos[0]["info"])
