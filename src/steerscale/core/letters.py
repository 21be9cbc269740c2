"""Letter-balanced estimators and the letter figures every vector records (DESIGN.md "Definitions").

Per item, diff = act(matching answer) - act(non-matching answer) at the answer token. Items fall into letter
cells c = (m, n): matching letter m, non-matching letter n; ``ActivationStats.cells`` holds each cell's sum
of diff and count from the one streaming pass. Model each cell's mean as

    M_(m,n) = b + lambda_m - lambda_n (+ residual)

where lambda_x is letter x's identity component and b the behaviour. Estimators (``letter_balance``):

* ``none``: CAA's raw mean, sum_c w_c M_c with w_c the cell's share of the items. For two letters this is
  exactly s_bar * l + r (s_bar = share of A-matching minus share of B-matching items).
* ``balanced`` (default): b from the least-squares fit of the model above over the cells present, each cell
  weighted equally (one equation per cell mean, whatever its count). With every cell present this is the plain
  average of the cell means (the letter terms sum to 0 over all (m, n) pairs, and the intercept column is
  orthogonal to the letter columns), i.e. equal weight per matching letter and per non-matching letter; for two
  letters it is 1/2 (M_AB + M_BA) = r. A letter component lambda cancels exactly whatever the imbalance. When
  the cells present cannot separate b from the letters (e.g. every item matches A), it is refused.
* ``swap``: the raw mean over the items plus each item with its two options exchanged (``data.swap_item``),
  so every cell (m, n) is matched by as many (n, m) items and sum_c w_c (lambda_m - lambda_n) = 0.

Letter figures, per layer: l = lambda_A - lambda_B (the letter-identity direction; for two letters
1/2 (M_AB - M_BA)), r = b, |v|, cos(v, l) and the imbalance term's share of the vector |t| / |v| with
t = sum_c w_c (lambda_m - lambda_n) (= s_bar * l for two letters) for ``none``, 0 by construction otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch

from ..errors import SteerscaleError

log = logging.getLogger(__name__)

ESTIMATORS = ("balanced", "swap", "none")
IMBALANCE_BOUND = 0.10  # the imbalance term's share of |v| above which a 'none' vector warns / is refused


def _cells(cells: dict) -> tuple[list[tuple[str, str]], list[int], torch.Tensor]:
    keys = sorted(cells)
    pairs = [tuple(k.split(">")) for k in keys]
    counts = [int(cells[k][1]) for k in keys]
    means = torch.stack([cells[k][0].double() / cells[k][1] for k in keys])  # [C, L, H]
    return pairs, counts, means


def _design(pairs, letters) -> torch.Tensor:
    """Rows [1, e_m - e_n] over the letters but the last (its lambda is fixed at 0: only differences count)."""
    col = {x: i for i, x in enumerate(letters[:-1])}
    x = torch.zeros(len(pairs), len(letters), dtype=torch.float64)
    x[:, 0] = 1.0
    for i, (m, n) in enumerate(pairs):
        if m in col:
            x[i, 1 + col[m]] += 1.0
        if n in col:
            x[i, 1 + col[n]] -= 1.0
    return x


def _rank(x: torch.Tensor) -> int:
    return int(torch.linalg.matrix_rank(x)) if x.numel() else 0


def counts_text(cells: dict) -> str:
    by_letter: dict[str, int] = {}
    for k, (_, n) in cells.items():
        m = k.split(">")[0]
        by_letter[m] = by_letter.get(m, 0) + int(n)
    return ", ".join(f"{m}: {n}" for m, n in sorted(by_letter.items()))


@dataclass
class Decomposition:
    """raw = sum_c w_c M_c, balanced = b, letter = lambda_A - lambda_B (None when the cells cannot tell it),
    imbalance = raw's letter term t; all [n_layers, hidden] float64."""

    raw: torch.Tensor
    balanced: torch.Tensor
    letter: torch.Tensor | None
    imbalance: torch.Tensor


def check_balanceable(cell_counts: dict) -> None:
    """Refuse (one line naming the counts) letter cells ``{"A>B": n, ...}`` from which the letter-balanced
    estimator cannot separate the behaviour from the letters (e.g. every item matches A). Cheap: run it
    before any forward pass."""
    pairs = [tuple(k.split(">")) for k in sorted(cell_counts)]
    letters = sorted({x for p in pairs for x in p})
    x = _design(pairs, letters)
    if _rank(x) != _rank(x[:, 1:]) + 1:
        cells = {k: (None, n) for k, n in cell_counts.items()}
        raise SteerscaleError(
            f"letter-balanced estimator: the items' letter pairs ({', '.join(f'{m}>{n}' for m, n in pairs)}; "
            f"matching letters {counts_text(cells)}) cannot separate the behaviour from the answer letters (a "
            f"letter never matches, or the letter pairs do not overlap); use --letter-balance swap (adds each "
            f"item with its options exchanged) or none (CAA's raw mean, letter component included)")


def item_cells(items) -> dict:
    """``{"A>B": n, ...}``: items per (matching letter, non-matching letter)."""
    out: dict[str, int] = {}
    for it in items:
        k = f"{it.matching}>{it.not_matching}"
        out[k] = out.get(k, 0) + 1
    return out


def decompose(cells: dict) -> Decomposition:
    """The estimators and letter terms of a set of letter cells (``ActivationStats.cells``); see the module
    docstring. Refuses (SteerscaleError, one line) cells that cannot separate the behaviour from the letters."""
    if not cells:
        raise SteerscaleError("no letter cells to estimate from (an activation cache without per-letter sums)")
    check_balanceable({k: n for k, (_, n) in cells.items()})
    pairs, counts, means = _cells(cells)
    letters = sorted({x for p in pairs for x in p})
    x = _design(pairs, letters)
    shape = means.shape[1:]
    y = means.reshape(len(pairs), -1)
    coef = torch.linalg.pinv(x) @ y  # [1 + K - 1, L*H]; the intercept is identified (checked above)
    lam = {letters[i]: coef[1 + i].reshape(shape) for i in range(len(letters) - 1)}
    lam[letters[-1]] = torch.zeros(shape, dtype=torch.float64)
    w = torch.tensor(counts, dtype=torch.float64) / sum(counts)
    raw = (w.view(-1, 1, 1) * means).sum(0)
    balanced = coef[0].reshape(shape)
    imbalance = sum(float(w[i]) * (lam[m] - lam[n]) for i, (m, n) in enumerate(pairs))
    letter = None
    if "A" in letters and "B" in letters:
        e = torch.zeros(x.shape[1], dtype=torch.float64)  # the contrast lambda_A - lambda_B
        for s, name in ((1.0, "A"), (-1.0, "B")):
            if name != letters[-1]:
                e[1 + letters.index(name)] = s
        if _rank(torch.cat([x, e.view(1, -1)])) == _rank(x):  # estimable from these cells
            letter = lam["A"] - lam["B"]
    return Decomposition(raw, balanced, letter, imbalance)


@dataclass
class LetterFigures:
    """What a vector is made of, as recorded in its metadata (``meta["letter"]``), per layer where a list.

    `counts`: training items per matching letter; `imbalance` (s_bar): (A-matching - B-matching) / items;
    `letter_norm` |l|, `behaviour_norm` |r| (r: the letter-balanced estimate), `vector_norm` |v| (before any
    normalisation), `cos_letter` cos(v, l) (None where l is not estimable), `imbalance_share` |t| / |v| (the
    imbalance term's share of the vector; 0 by construction for 'balanced' and 'swap')."""

    estimator: str
    counts: dict
    n_items: int
    imbalance: float
    letter_norm: list
    behaviour_norm: list
    vector_norm: list
    cos_letter: list
    imbalance_share: list

    @property
    def max_share(self) -> float:
        if any(s is None for s in self.imbalance_share):
            return float("inf")  # not measurable (a letter never matches): counts as over any bound
        return max(self.imbalance_share) if self.imbalance_share else 0.0

    def to_meta(self) -> dict:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict) -> "LetterFigures | None":
        """The figures of a vector file's metadata, or None for files without them (imported, older)."""
        d = meta.get("letter") if isinstance(meta, dict) else None
        if not isinstance(d, dict):
            return None
        try:
            return cls(**{k: d[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError):
            return None

    def summary(self) -> str:
        """One line: estimator, counts, s_bar, largest imbalance share, range of cos(v, l)."""
        cos = [c for c in self.cos_letter if c is not None]
        rng = f"{min(cos):+.2f}..{max(cos):+.2f}" if cos else "n/a"
        counts = "/".join(f"{n} {m}" for m, n in self.counts.items())
        return (f"letters: estimator {self.estimator}, matching {counts} (s_bar {self.imbalance:+.3f}), "
                f"imbalance term <= {100 * self.max_share:.1f}% of |v|, cos(v, letter) {rng}")


def letter_figures(estimator: str, counts: dict, vector: torch.Tensor, dec: Decomposition) -> LetterFigures:
    """The figures of `vector` (the unnormalised estimate of `estimator`) from the decomposition `dec` of its
    training cells (for 'swap', the cells of the swap-augmented items)."""
    v = vector.double()
    vn = v.norm(dim=-1)
    n = sum(counts.values())
    sbar = (counts.get("A", 0) - counts.get("B", 0)) / n if n else 0.0
    if dec.letter is not None:
        ln = dec.letter.norm(dim=-1)
        cos = [round(float(c), 6) for c in (v * dec.letter).sum(-1) / (vn * ln).clamp_min(1e-30)]
        lnorm = [round(float(x), 6) for x in ln]
    else:
        cos, lnorm = [None] * v.shape[0], [None] * v.shape[0]
    if estimator == "none":
        share = [round(float(x), 6) for x in dec.imbalance.norm(dim=-1) / vn.clamp_min(1e-30)]
    else:
        share = [0.0] * v.shape[0]
    return LetterFigures(estimator, dict(sorted(counts.items())), n, round(sbar, 6), lnorm,
                         [round(float(x), 6) for x in dec.balanced.norm(dim=-1)], [round(float(x), 6) for x in vn],
                         cos, share)


def _share(s) -> float:
    return float("inf") if s is None else float(s)


def _over(s) -> bool:
    """Over the bound, or not measurable (None: a letter never matches, so no balanced reference)."""
    return _share(s) > IMBALANCE_BOUND


def warn_imbalance(fig: LetterFigures, where: str = "vectors") -> None:
    """A logging warning when the imbalance term exceeds IMBALANCE_BOUND of |v| at any layer."""
    bad = [l for l, s in enumerate(fig.imbalance_share) if _over(s)]
    if bad:
        worst = max(bad, key=lambda l: _share(fig.imbalance_share[l]))
        log.warning("%s: the letter-imbalance term is over %.0f%% of the vector at %d layer(s) (up to %.0f%% at "
                    "layer %d; matching letters %s); it steers the answer letter, not only the behaviour; "
                    "train with --letter-balance balanced", where, 100 * IMBALANCE_BOUND, len(bad),
                    100 * _share(fig.imbalance_share[worst]), worst, fig.counts)


def check_imbalance(meta: dict, layers=None, allow: bool = False, where: str = "vectors") -> None:
    """Refuse (SteerscaleError) vectors whose imbalance term is over IMBALANCE_BOUND of |v| at any of `layers`
    (default all), unless `allow` (``--allow-letter-imbalance``). Vectors without letter figures pass."""
    fig = LetterFigures.from_meta(meta)
    if fig is None or allow:
        return
    layers = range(len(fig.imbalance_share)) if layers is None else layers
    bad = [l for l in layers if 0 <= l < len(fig.imbalance_share) and _over(fig.imbalance_share[l])]
    if bad:
        worst = max(bad, key=lambda l: _share(fig.imbalance_share[l]))
        raise SteerscaleError(
            f"{where}: estimator {fig.estimator!r} with matching letters {fig.counts} (s_bar {fig.imbalance:+.3f}): "
            f"the letter-imbalance term is {100 * _share(fig.imbalance_share[worst]):.0f}% of the vector at layer "
            f"{worst} "
            f"(over {100 * IMBALANCE_BOUND:.0f}% at {len(bad)} swept layer(s)); train with --letter-balance "
            f"balanced, or pass --allow-letter-imbalance")
