"""What an open-ended sweep measures: `OpenEndedConfig` (points, multipliers, prompts, generation, CE, bootstrap).

A *point* is a window of layers ``layer_start .. layer_end`` (width 1 = one layer): the single layers in
`layers` plus every (window start x window width). `validate()` returns a checked copy (multipliers
sorted, -0 read as 0, repeats dropped); invalid values are a one-line SteerscaleError naming the field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..errors import SteerscaleError
from ..steering import POSITIONS, WINDOW_MODES


@dataclass
class OpenEndedConfig:
    """What to sweep. Points are single layers (`layers`) plus windows (every start x width)."""

    layers: list[int] | None = None  # single-layer points; None = every layer (unless windows are given)
    window_starts: list[int] = field(default_factory=list)
    window_widths: list[int] = field(default_factory=list)
    window_mode: str = "per-layer"
    multipliers: list[float] = field(default_factory=lambda: [-4.0, -2.0, 0.0, 2.0, 4.0])
    positions: str = "all"
    template: str = "chat"
    system: str | None = None
    batch_size: int = 8
    n_logodds: int | None = None  # prompts per kind for log-odds (None = all)
    n_generate: int = 4  # prompts per kind for generation (0 = no generation)
    max_new_tokens: int = 40
    sampled: bool = False  # also sampled generation (temperature, seeded)
    temperature: float = 0.7
    n_neutral: int | None = None  # neutral paragraphs for CE (None = all; 0 = no CE)
    ce_max_tokens: int = 256
    ce_bound: float | None = None  # largest multiplier whose CE increase stays <= this, per point and sign
    n_bootstrap: int = 1000
    seed: int = 0

    def points(self, n_layers: int) -> list[tuple[int, int]]:
        """(layer_start, layer_end) pairs, inclusive, sorted; windows past the last layer are skipped."""
        if self.window_mode not in WINDOW_MODES:
            raise SteerscaleError(f"window mode {self.window_mode!r}: expected one of {', '.join(WINDOW_MODES)}")
        pts = set()
        layers = self.layers
        if layers is None and not self.window_starts:
            layers = list(range(n_layers))
        for l in layers or []:
            if not 0 <= l < n_layers:
                raise SteerscaleError(f"layers [{l}]: out of range, this model has layers 0..{n_layers - 1}")
            pts.add((l, l))
        if bool(self.window_starts) != bool(self.window_widths):
            raise SteerscaleError("windows: give both window starts and window widths")
        for s in self.window_starts:
            for w in self.window_widths:
                if w < 1 or s < 0:
                    raise SteerscaleError(f"window start {s} width {w}: expected start >= 0 and width >= 1")
                if s + w <= n_layers:
                    pts.add((s, s + w - 1))
        if not pts:
            raise SteerscaleError("no layers or windows to sweep (windows past the last layer are skipped)")
        return sorted(pts, key=lambda p: (p[1] - p[0], p[0]))

    def validate(self) -> "OpenEndedConfig":
        if self.positions not in POSITIONS:
            raise SteerscaleError(f"positions {self.positions!r}: expected one of {', '.join(POSITIONS)}")
        if not self.multipliers:
            raise SteerscaleError("multipliers: expected at least one value")
        for m in self.multipliers:
            if not isinstance(m, (int, float)) or not math.isfinite(m):
                raise SteerscaleError(f"multiplier {m!r}: expected a finite number")
        if self.batch_size < 1:
            raise SteerscaleError(f"batch_size {self.batch_size}: expected a positive integer")
        for k, low in (("n_generate", 0), ("max_new_tokens", 1), ("seed", 0)):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise SteerscaleError(f"{k} {v!r}: expected an integer >= {low}")
        for k, low in (("n_logodds", 1), ("n_neutral", 0)):
            v = getattr(self, k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
                raise SteerscaleError(f"{k} {v!r}: expected an integer >= {low} (or None for all)")
        # -0 is 0; repeated multipliers count once (they would repeat rows and narrow the intervals)
        return OpenEndedConfig(**dict(asdict(self), multipliers=sorted({float(m) + 0.0 for m in self.multipliers})))
