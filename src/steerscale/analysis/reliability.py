"""Reliability of a steering vector, after Tan et al. 2024 ("Analyzing the generalization and reliability of
steering vectors"): split-half stability, per-item steerability and the test items' letter balance.

* :func:`split_half_stability`: the training pairs are split into two seeded halves stratified by matching
  letter (each half keeps the letter shares), a vector is trained on each with the library's own
  ``train_vectors`` (whatever estimator it is given or defaults to), and the cosine between the two halves'
  vectors is reported per layer. Cost: one more pass over the training pairs (two halves), recorded.
* :func:`item_steerability`: per layer, each test item's least-squares slope of its log-odds
  (log p(matching) − log p(not matching), items.csv ``logit_diff``) in the multiplier; the mean slope and the
  fraction of anti-steerable items (slope < 0), each with a percentile-bootstrap interval over items
  (``stats.bootstrap_weights``, the one bootstrap).
* :func:`letter_balance`: the items' counts per matching letter and the imbalance s̄.

Results are typed (:class:`SplitHalf`, :class:`Steerability`, :class:`LetterBalance`, :class:`Reliability`)
and round-trip through JSON (``reliability.json`` in a model's folder).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SteerscaleError
from ..stats import bootstrap_weights, percentile_ci
from .effects import item_slopes
from .items import ItemTable

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..core.types import Tokenizer


@dataclass
class LetterBalance:
    """Items per matching letter. ``imbalance`` = share of A-matching minus share of B-matching items for two
    letters (s̄ of the design notes); with more letters, the largest minus the smallest share."""

    counts: dict[str, int]
    n: int
    imbalance: float


@dataclass
class SplitHalf:
    """Cosine between the vectors of two letter-stratified halves of the training pairs, per layer."""

    layers: list[int]
    cosine: list[float]
    norm_a: list[float]
    norm_b: list[float]
    letters_a: LetterBalance
    letters_b: LetterBalance
    seed: int
    estimator: str
    seconds: float = 0.0  # wall time of the two training passes

    def at(self, layer: int) -> float:
        return self.cosine[self.layers.index(layer)]


@dataclass
class Steerability:
    """Per-item log-odds slopes at one layer (per unit multiplier) and the anti-steerable fraction."""

    layer: int
    n_items: int
    mean_slope: float
    slope_low: float
    slope_high: float
    median_slope: float
    frac_anti: float  # share of items whose slope is < 0
    frac_anti_low: float
    frac_anti_high: float


@dataclass
class Reliability:
    """All three measures of one model (any may be missing: None / empty)."""

    model: str
    split_half: SplitHalf | None = None
    steerability: list[Steerability] = field(default_factory=list)
    test_letters: LetterBalance | None = None

    def steer_at(self, layer: int) -> Steerability | None:
        return next((s for s in self.steerability if s.layer == layer), None)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Reliability":
        try:
            sh = d.get("split_half")
            if sh is not None:
                sh = SplitHalf(**dict(sh, letters_a=LetterBalance(**sh["letters_a"]),
                                      letters_b=LetterBalance(**sh["letters_b"])))
            tl = d.get("test_letters")
            return cls(str(d["model"]), sh, [Steerability(**s) for s in d.get("steerability") or []],
                       LetterBalance(**tl) if tl is not None else None)
        except (KeyError, TypeError, AttributeError) as e:
            raise SteerscaleError(f"reliability record: bad or missing field ({type(e).__name__}: {e})") from None


def letter_balance(items) -> LetterBalance:
    """Counts per matching letter of A/B items (letters sorted) and their imbalance."""
    counts: dict[str, int] = {}
    for it in items:
        counts[it.matching] = counts.get(it.matching, 0) + 1
    counts = dict(sorted(counts.items()))
    n = sum(counts.values())
    if not n:
        return LetterBalance({}, 0, 0.0)
    if set(counts) <= {"A", "B"}:
        imb = (counts.get("A", 0) - counts.get("B", 0)) / n
    else:
        shares = [c / n for c in counts.values()]
        imb = max(shares) - min(shares)
    return LetterBalance(counts, n, float(imb))


def stratified_halves(items, seed: int = 0) -> tuple[list, list]:
    """Two halves of `items`, each matching letter split separately by a seeded permutation
    (``data.split_items`` with the matching letters as strata), both in the original order."""
    from ..core.data import split_items

    a, b = split_items(list(items), 0.5, seed, strata=[it.matching for it in items])
    if not a or not b:
        raise SteerscaleError(f"split-half stability needs at least 2 training pairs, got {len(items)}")
    return a, b


def cosines(va, vb) -> list[float]:
    """Per-layer cosine of two [n_layers, hidden] arrays; NaN where either vector is zero."""
    a, b = np.asarray(va, dtype=np.float64), np.asarray(vb, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a * b).sum(-1) / (na * nb)
    return [float(x) if na[i] > 0 and nb[i] > 0 else float("nan") for i, x in enumerate(c)]


def split_half_stability(model: PreTrainedModel, tokenizer: Tokenizer, items, seed: int = 0,
                         layers: list[int] | None = None, **train_kw) -> SplitHalf:
    """Train a vector on each letter-stratified half of `items` with ``train_vectors(model, tokenizer, half,
    **train_kw)`` (no activation cache: the halves are new inputs) and return their cosine per layer
    (`layers`, default all)."""
    from ..core.vectors import train_vectors

    ha, hb = stratified_halves(items, seed)
    t0 = time.time()
    kw = dict(train_kw, cache_dir=None, progress=False)
    va, vb = train_vectors(model, tokenizer, ha, **kw), train_vectors(model, tokenizer, hb, **kw)
    seconds = time.time() - t0
    a, b = va.vectors.double().numpy(), vb.vectors.double().numpy()
    layers = list(range(a.shape[0])) if layers is None else sorted(set(layers))
    cos = cosines(a, b)
    est = str(va.meta.get("letter_balance") or va.meta.get("estimator") or train_kw.get("letter_balance") or "default")
    return SplitHalf(layers, [cos[l] for l in layers], [float(np.linalg.norm(a[l])) for l in layers],
                     [float(np.linalg.norm(b[l])) for l in layers], letter_balance(ha), letter_balance(hb), seed,
                     est, round(seconds, 1))


def item_steerability(table: ItemTable, n_boot: int = 1000, seed: int = 0) -> list[Steerability]:
    """Per swept layer: the items' log-odds slopes in the multiplier (mean, median, bootstrap interval of the
    mean) and the fraction of anti-steerable items (slope < 0) with its bootstrap interval."""
    _, g = item_slopes(table)  # [layers, items], log-odds per unit multiplier
    w = bootstrap_weights(table.n_items, n_boot, seed)
    out = []
    for i, layer in enumerate(table.layers):
        s = g[i]
        anti = (s < 0).astype(np.float64)
        lo, hi = percentile_ci(w @ s) if n_boot > 0 else (float(s.mean()),) * 2
        alo, ahi = percentile_ci(w @ anti) if n_boot > 0 else (float(anti.mean()),) * 2
        out.append(Steerability(int(layer), table.n_items, float(s.mean()), lo, hi, float(np.median(s)),
                                float(anti.mean()), alo, ahi))
    return out
