"""From a sweep's per-item rows to findings: effects with intervals, per-item slopes, peaks, asymmetry.

Everything here works on the tidy per-item rows of a sweep (``SweepResult.rows``
or ``items.csv``): one row per (model, layer, multiplier, item) with the item's
behaviour ``score`` (p(matching letter) normalised over the choice letters) and
``logit_diff``. Definitions (the same as the rest of steerscale):

- baseline p(0): mean score at multiplier 0 (the unsteered model; the sweep
  repeats it at every layer, so any layer's copy is used).
- effect Δ(L, m) = p(L, m) − p(0), with a *paired* seeded percentile bootstrap
  over items: each resample draws items once and uses the same items for both
  terms.
- depth = L / n_layers (``depth``; used by the plots) and L / (n_layers − 1)
  (``depth_alt``; 0 = first layer, 1 = last layer).
- movement: s·Δ for a multiplier of sign s (−Δ under −m, +Δ under +m), i.e. how
  far p moved in the direction the multiplier asks for; negative = the wrong way.
- peak: for each multiplier sign, the layer with the largest *movement* s·Δ (never
  |Δ|: a layer that breaks the format and pulls p the wrong way is not a peak) on
  a seeded *validation* half of the items; its effect is reported on the other,
  *test* half, so the layer is never picked and reported on the same items.
  Layers whose Δ (all items, Bonferroni-corrected over layers) lies on the wrong
  side of 0 are listed separately (``ModelAnalysis.wrong_way``). ``selection="in-sample"`` (the CAA
  protocol) picks and reports on all items instead, and says so.
- asymmetry: movement under −m vs under +m, each at its own peak layer, measured
  on the test items with a paired bootstrap, in probability and in log-odds of the
  mean score (probability mixes in headroom: from a 0.74 baseline +m can add at
  most 0.26, −m can remove 0.74); ratio and difference are given on both scales.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .data import split_items
from .errors import SteerscaleError
from .stats import LEVEL, bootstrap_weights, percentile_ci  # noqa: F401  (re-exported)



# ---------------------------------------------------------------- reading rows


_INT = ("n_params", "n_layers", "layer")
_FLOAT = ("depth", "multiplier", "score", "logit_diff", "letter_mass")


def read_items_csv(path) -> list[dict]:
    """Rows of a sweep's ``items.csv`` with numeric columns converted."""
    path = Path(path)
    if not path.is_file():
        raise SteerscaleError(f"{path}: no such file (expected a sweep's items.csv)")
    out = []
    with open(path, newline="") as f:
        for n, r in enumerate(csv.DictReader(f), 2):
            try:
                for k in _INT:
                    r[k] = int(float(r[k]))
                for k in _FLOAT:
                    if r.get(k) not in (None, ""):
                        r[k] = float(r[k])
            except (KeyError, ValueError, TypeError) as e:
                raise SteerscaleError(f"{path}: row {n}: bad or missing column ({e})") from None
            if not 0.0 <= r["score"] <= 1.0:  # a probability; NaN and Inf fail here too
                raise SteerscaleError(f"{path}: row {n}: score {r['score']!r} is not a probability in [0, 1]")
            for k in ("multiplier", "logit_diff", "depth"):
                if isinstance(r.get(k), float) and not math.isfinite(r[k]):
                    raise SteerscaleError(f"{path}: row {n}: {k} {r[k]!r} is not a finite number")
            out.append(r)
    if not out:
        raise SteerscaleError(f"{path}: no rows")
    return out


@dataclass
class ItemTable:
    """Per-item scores of one model as arrays: ``score[layer_index, multiplier_index, item_index]``."""

    model: str
    n_params: int
    n_layers: int
    layers: list[int]
    multipliers: list[float]
    items: list[str]
    categories: list[str]
    score: np.ndarray
    logit_diff: np.ndarray
    letter_mass: np.ndarray
    baseline: np.ndarray  # per-item score at multiplier 0
    baseline_logit: np.ndarray

    @classmethod
    def from_rows(cls, rows: list[dict], model: str | None = None) -> "ItemTable":
        models = sorted({r["model"] for r in rows})
        if model is None:
            if len(models) != 1:
                raise SteerscaleError(f"rows hold {len(models)} models ({', '.join(models)}); name one")
            model = models[0]
        rows = [r for r in rows if r["model"] == model]
        if not rows:
            raise SteerscaleError(f"no rows for model {model!r}; models present: {', '.join(models)}")
        layers = sorted({int(r["layer"]) for r in rows})
        mults = sorted({float(r["multiplier"]) for r in rows})
        items = list(dict.fromkeys(str(r["item"]) for r in rows))
        if 0.0 not in mults:
            raise SteerscaleError(f"model {model}: no rows at multiplier 0; the baseline is needed for effects")
        li = {l: i for i, l in enumerate(layers)}
        mi = {m: i for i, m in enumerate(mults)}
        ii = {it: i for i, it in enumerate(items)}
        shape = (len(layers), len(mults), len(items))
        arrs = {k: np.full(shape, np.nan) for k in ("score", "logit_diff", "letter_mass")}
        cats = [""] * len(items)
        for r in rows:
            idx = (li[int(r["layer"])], mi[float(r["multiplier"])], ii[str(r["item"])])
            for k in arrs:
                v = r.get(k)
                arrs[k][idx] = float(v) if v not in (None, "") else np.nan
            cats[idx[2]] = str(r.get("category", ""))
        if np.isnan(arrs["score"]).any():
            missing = int(np.isnan(arrs["score"]).sum())
            raise SteerscaleError(
                f"model {model}: {missing} of {arrs['score'].size} (layer, multiplier, item) scores are missing; "
                "the sweep is incomplete"
            )
        z = mi[0.0]
        r0 = rows[0]
        return cls(
            model=model, n_params=int(r0["n_params"]), n_layers=int(r0["n_layers"]), layers=layers,
            multipliers=mults, items=items, categories=cats, score=arrs["score"],
            logit_diff=arrs["logit_diff"], letter_mass=arrs["letter_mass"],
            baseline=arrs["score"][:, z, :].mean(0), baseline_logit=arrs["logit_diff"][:, z, :].mean(0),
        )

    def subset(self, idx) -> "ItemTable":
        idx = np.asarray(idx, dtype=int)
        return ItemTable(
            self.model, self.n_params, self.n_layers, self.layers, self.multipliers,
            [self.items[i] for i in idx], [self.categories[i] for i in idx], self.score[:, :, idx],
            self.logit_diff[:, :, idx], self.letter_mass[:, :, idx], self.baseline[idx], self.baseline_logit[idx],
        )

    @property
    def n_items(self) -> int:
        return len(self.items)

    def depth(self, layer: int) -> float:
        return layer / self.n_layers

    def depth_alt(self, layer: int) -> float:
        return layer / max(self.n_layers - 1, 1)


# ---------------------------------------------------------------- bootstrap


# ---------------------------------------------------------------- effects


def baseline(table: ItemTable, n_boot: int = 1000, seed: int = 0) -> dict:
    """p(behaviour) of the unsteered model with a bootstrap interval, and how well it reads the format."""
    w = bootstrap_weights(table.n_items, n_boot, seed)
    lo, hi = percentile_ci(w @ table.baseline)
    z = table.multipliers.index(0.0)
    mass = float(np.nanmean(table.letter_mass[:, z, :]))
    return {"p": float(table.baseline.mean()), "ci_low": lo, "ci_high": hi, "n_items": table.n_items,
            "letter_mass": mass, "frac_decided": float(np.mean(np.abs(table.baseline - 0.5) > 0.25)),
            "logit_diff": float(table.baseline_logit.mean())}


def effects(table: ItemTable, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """One row per (layer, multiplier): p, its interval, Δ = p − p(0) and its paired interval."""
    w = bootstrap_weights(table.n_items, n_boot, seed)  # [B, n]
    p_boot = table.score @ w.T  # [L, M, B]
    d = table.score - table.baseline[None, None, :]
    d_boot = d @ w.T
    out = []
    for i, layer in enumerate(table.layers):
        for j, m in enumerate(table.multipliers):
            plo, phi = percentile_ci(p_boot[i, j])
            dlo, dhi = percentile_ci(d_boot[i, j]) if m != 0 else (0.0, 0.0)
            out.append({
                "model": table.model, "n_params": table.n_params, "n_layers": table.n_layers, "layer": layer,
                "depth": table.depth(layer), "depth_alt": table.depth_alt(layer), "multiplier": m,
                "n_items": table.n_items, "p": float(table.score[i, j].mean()), "p_low": plo, "p_high": phi,
                "delta": float(d[i, j].mean()), "delta_low": dlo, "delta_high": dhi,
                "logit_delta": float((table.logit_diff[i, j] - table.baseline_logit).mean()),
            })
    return out


def item_slopes(table: ItemTable) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope of each item's score and logit difference against the multiplier: [layers, items] each."""
    m = np.asarray(table.multipliers)
    if len(m) < 2:
        raise SteerscaleError("per-item slopes need at least two multipliers")
    mc = m - m.mean()
    denom = float((mc ** 2).sum())
    s = np.einsum("m,lmi->li", mc, table.score) / denom
    g = np.einsum("m,lmi->li", mc, table.logit_diff) / denom
    return s, g


def steerability(table: ItemTable, n_boot: int = 1000, seed: int = 0, tol: float = 1e-6) -> list[dict]:
    """Per layer: mean per-item slope (score and logit difference per unit multiplier), its interval,
    and the fraction of items moving the wrong way (slope < −tol: steering towards the behaviour lowers it)."""
    s, g = item_slopes(table)
    w = bootstrap_weights(table.n_items, n_boot, seed)
    sb = s @ w.T
    out = []
    for i, layer in enumerate(table.layers):
        lo, hi = percentile_ci(sb[i])
        out.append({
            "model": table.model, "layer": layer, "depth": table.depth(layer), "slope": float(s[i].mean()),
            "slope_low": lo, "slope_high": hi, "slope_median": float(np.median(s[i])),
            "logit_slope": float(g[i].mean()), "frac_wrong_way": float(np.mean(s[i] < -tol)),
            "frac_right_way": float(np.mean(s[i] > tol)),
        })
    return out


# ---------------------------------------------------------------- peaks and asymmetry


def split_indices(table: ItemTable, val_fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (validation, test) split of item positions, via ``data.split_items``."""
    if table.n_items < 4:
        raise SteerscaleError(f"model {table.model}: {table.n_items} items; a validation/test split needs at least 4")
    val, test = split_items(list(range(table.n_items)), val_fraction, seed)
    if not val or not test:
        raise SteerscaleError(f"val_fraction {val_fraction}: leaves an empty validation or test split")
    return np.array(val), np.array(test)


def _sign_multiplier(table: ItemTable, sign: int, multiplier: float | None) -> float:
    if multiplier is not None:
        m = sign * abs(float(multiplier))
        if m not in table.multipliers:
            raise SteerscaleError(f"model {table.model}: multiplier {m:+g} was not swept "
                                  f"(swept: {', '.join(f'{x:+g}' for x in table.multipliers)})")
        return m
    cands = [m for m in table.multipliers if m * sign > 0]
    if not cands:
        raise SteerscaleError(f"model {table.model}: no {'positive' if sign > 0 else 'negative'} multiplier swept")
    return max(cands, key=abs)


@dataclass
class Peak:
    """The peak layer for one multiplier sign: chosen on validation items, effect reported on test items.

    The layer is the one with the largest movement s·Δ (s = sign of the multiplier) on the validation
    items. When no layer moves the intended way there, it is still the "least wrong" layer, and
    ``right_way`` (the test interval of Δ lies on the multiplier's side of 0) is False: claims must
    check ``right_way``, never only ``significant``."""

    sign: str  # "positive" | "negative"
    multiplier: float
    layer: int
    depth: float  # layer / n_layers
    depth_alt: float  # layer / (n_layers - 1)
    delta_val: float  # Δ at the chosen layer on the validation items (selection-biased; not for reporting)
    delta: float  # Δ at the chosen layer on the test items
    ci_low: float
    ci_high: float
    p: float  # p(behaviour) at the peak, test items
    depth_ci_low: float  # bootstrap over validation items of the selected depth
    depth_ci_high: float
    selection_stability: float  # fraction of validation resamples that select the same layer
    frac_wrong_way: float  # test items whose score moves against the multiplier's sign at this layer
    n_val: int
    n_test: int
    in_sample: bool = False  # True: layer chosen and reported on the same items (CAA protocol), optimistic

    @property
    def s(self) -> int:
        return 1 if self.multiplier > 0 else -1

    @property
    def significant(self) -> bool:
        """The test interval of Δ excludes 0 (either side)."""
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def right_way(self) -> bool:
        """The test interval of Δ lies on the multiplier's side of 0: a real effect in the intended direction."""
        return self.ci_low > 0 if self.multiplier > 0 else self.ci_high < 0

    @property
    def expected_direction(self) -> bool:
        return (self.delta > 0) == (self.multiplier > 0)

    @property
    def move(self) -> float:
        """s·Δ on the test items: movement in the multiplier's direction (negative = the wrong way)."""
        return self.s * self.delta

    @property
    def move_ci(self) -> tuple[float, float]:
        """Interval of s·Δ (the interval of Δ, mirrored for −m; never folded at 0)."""
        return (self.ci_low, self.ci_high) if self.s > 0 else (-self.ci_high, -self.ci_low)


def find_peak(table: ItemTable, sign: int, val_idx, test_idx, multiplier: float | None = None,
              n_boot: int = 1000, seed: int = 0, in_sample: bool = False) -> Peak:
    """Layer with the largest movement s·Δ for this sign on the validation items; Δ there on the test items.

    ``in_sample=True`` allows val_idx and test_idx to be the same items (CAA's protocol: optimistic, the
    layer is picked on the items it is reported on); otherwise overlapping splits are an error."""
    m = _sign_multiplier(table, sign, multiplier)
    s = 1.0 if m > 0 else -1.0
    j = table.multipliers.index(m)
    d = table.score[:, j, :] - table.baseline[None, :]  # [L, n]
    val_idx, test_idx = np.asarray(val_idx), np.asarray(test_idx)
    if not in_sample and set(val_idx.tolist()) & set(test_idx.tolist()):
        raise SteerscaleError("validation and test items overlap")
    dv = d[:, val_idx].mean(1)
    i = int(np.argmax(s * dv))
    layer = table.layers[i]
    # uncertainty of the choice itself: re-select on resampled validation items
    wv = bootstrap_weights(len(val_idx), n_boot, seed + 1)
    sel = np.argmax(s * (d[:, val_idx] @ wv.T), axis=0)  # [B]
    sel_depth = np.array([table.depth(table.layers[k]) for k in sel])
    dlo, dhi = percentile_ci(sel_depth)
    wt = bootstrap_weights(len(test_idx), n_boot, seed + 2)
    dt = d[i, test_idx]
    lo, hi = percentile_ci(wt @ dt)
    moved = dt * s
    return Peak(
        sign="positive" if sign > 0 else "negative", multiplier=m, layer=layer, depth=table.depth(layer),
        depth_alt=table.depth_alt(layer), delta_val=float(dv[i]), delta=float(dt.mean()), ci_low=lo, ci_high=hi,
        p=float(table.score[i, j, test_idx].mean()), depth_ci_low=dlo, depth_ci_high=dhi,
        selection_stability=float(np.mean(sel == i)), frac_wrong_way=float(np.mean(moved < -1e-6)),
        n_val=len(val_idx), n_test=len(test_idx), in_sample=in_sample,
    )


def wrong_way_layers(table: ItemTable, level: float = LEVEL) -> dict[str, list[dict]]:
    """Per sign, the (layer, multiplier) points where p moved against the multiplier over all items: −m raised p
    or +m lowered it, with Δ beyond 0 at `level` after a Bonferroni correction over the layers swept (normal
    approximation to the mean per-item difference), so a 30-layer sweep does not list noise. Reported beside
    the peaks, never as one."""
    from statistics import NormalDist

    out: dict[str, list[dict]] = {"negative": [], "positive": []}
    k = max(len(table.layers), 1)
    z = NormalDist().inv_cdf(1 - (1 - level) / (2 * k))
    n = table.n_items
    for j, m in enumerate(table.multipliers):
        if m == 0:
            continue
        d = table.score[:, j, :] - table.baseline[None, :]  # [L, n]
        mean = d.mean(1)
        se = d.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(mean), np.inf)
        for i, layer in enumerate(table.layers):
            lo, hi = mean[i] - z * se[i], mean[i] + z * se[i]
            if (m > 0 and hi < 0) or (m < 0 and lo > 0):
                out["positive" if m > 0 else "negative"].append(
                    {"layer": layer, "depth": table.depth(layer), "multiplier": m, "delta": float(mean[i]),
                     "delta_low": float(lo), "delta_high": float(hi), "level": level, "bonferroni_k": k})
    return out


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


@dataclass
class Asymmetry:
    """Movement under −m vs under +m at each sign's peak layer, on the test items, with paired bootstrap
    intervals, in probability and in log-odds of the mean score.

    ``move_negative`` = −Δ(−m), ``move_positive`` = +Δ(+m): positive when p moved the way the multiplier
    asks, negative when it moved the wrong way (never |Δ|). The log-odds terms are
    logit(mean p(L, m)) − logit(mean p(0)), signed the same way; they take out the headroom that the
    baseline leaves to each direction."""

    magnitude: float
    layer_negative: int
    layer_positive: int
    move_negative: float
    move_positive: float
    ratio: float  # move_negative / move_positive (∞ when move_positive <= 0 < move_negative)
    ratio_low: float
    ratio_high: float
    diff: float  # move_negative − move_positive
    diff_low: float
    diff_high: float
    n_test: int
    baseline: float = float("nan")  # mean p(0) on the test items
    logodds_negative: float = float("nan")
    logodds_positive: float = float("nan")
    logodds_ratio: float = float("nan")
    logodds_diff: float = float("nan")
    logodds_diff_low: float = float("nan")
    logodds_diff_high: float = float("nan")

    @property
    def abs_negative(self) -> float:  # old name, kept for callers; it is the signed movement
        return self.move_negative

    @property
    def abs_positive(self) -> float:
        return self.move_positive


def _ratio(num, den):
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, np.nan))


def asymmetry(table: ItemTable, neg: Peak, pos: Peak, test_idx, n_boot: int = 1000, seed: int = 0) -> Asymmetry:
    if abs(neg.multiplier) != abs(pos.multiplier):
        raise SteerscaleError(f"asymmetry needs ±m of the same size, got {neg.multiplier:+g} and {pos.multiplier:+g}")
    test_idx = np.asarray(test_idx)
    jn, jp = table.multipliers.index(neg.multiplier), table.multipliers.index(pos.multiplier)
    ln, lp = table.layers.index(neg.layer), table.layers.index(pos.layer)
    sn, sp, b = table.score[ln, jn, test_idx], table.score[lp, jp, test_idx], table.baseline[test_idx]
    w = bootstrap_weights(len(test_idx), n_boot, seed + 3)  # the same resampled items for every term
    bn, bp, bb = w @ sn, w @ sp, w @ b
    mn, mp = bb - bn, bp - bb  # movement in each multiplier's direction
    m_n, m_p = float(b.mean() - sn.mean()), float(sp.mean() - b.mean())
    ratio = float(_ratio(m_n, m_p))
    rb = _ratio(mn, mp)
    rb = rb[~np.isnan(rb)]
    # percentiles over the ratio with infinities kept (they sort last)
    qs = (np.quantile(np.sort(rb), [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2], method="inverted_cdf")
          if rb.size else [float("nan")] * 2)
    dlo, dhi = percentile_ci(mn - mp)
    ln_, lp_ = _logit(b.mean()) - _logit(sn.mean()), _logit(sp.mean()) - _logit(b.mean())
    lnb, lpb = _logit(bb) - _logit(bn), _logit(bp) - _logit(bb)
    llo, lhi = percentile_ci(lnb - lpb)
    return Asymmetry(abs(neg.multiplier), neg.layer, pos.layer, m_n, m_p, ratio, float(qs[0]), float(qs[1]),
                     m_n - m_p, dlo, dhi, len(test_idx), baseline=float(b.mean()),
                     logodds_negative=float(ln_), logodds_positive=float(lp_),
                     logodds_ratio=float(_ratio(ln_, lp_)), logodds_diff=float(ln_ - lp_),
                     logodds_diff_low=llo, logodds_diff_high=lhi)


# ---------------------------------------------------------------- one model, all of it

SELECTIONS = ("held-out", "in-sample")


@dataclass
class ModelAnalysis:
    model: str
    n_params: int
    n_layers: int
    layers: list[int]
    multipliers: list[float]
    n_items: int
    seed: int
    val_fraction: float
    baseline: dict
    effects: list[dict]
    steerability: list[dict]
    peaks: dict[str, Peak]  # "negative" / "positive"
    asymmetry: Asymmetry | None
    val_items: list[str] = field(default_factory=list)
    test_items: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = "sweep"  # "sweep" (our run) or "imported"
    wrong_way: dict[str, list[dict]] = field(default_factory=dict)  # sign -> layers moving the wrong way
    selection: str = "held-out"  # "held-out" (validation/test halves) or "in-sample" (CAA protocol)
    protocol: str = "steerscale-default"  # label of the run protocol (scaling fits only like with like)

    @property
    def n_params_b(self) -> float:
        return self.n_params / 1e9

    def peak_for(self, which: str = "max") -> Peak | None:
        """The peak of sign 'negative' / 'positive', or for 'max' the sign whose peak moved p further in its
        intended direction *on the validation items* (so the choice of sign is held out too)."""
        if which == "max":
            cands = [p for p in self.peaks.values()]
            return max(cands, key=lambda p: p.s * p.delta_val) if cands else None
        return self.peaks.get(which)

    def peak_move(self, which: str = "max") -> tuple[float, float, float] | None:
        """(s·Δ, low, high) on the test items at the chosen peak: signed movement, interval not folded at 0."""
        p = self.peak_for(which)
        if p is None:
            return None
        lo, hi = p.move_ci
        return p.move, lo, hi

    def peak_abs(self, which: str = "max") -> tuple[float, float, float] | None:
        """Deprecated name of :meth:`peak_move` (it is signed, not |Δ|)."""
        return self.peak_move(which)

    def to_dict(self) -> dict:
        d = asdict(self)
        return d


def analyze(rows_or_table, model: str | None = None, n_boot: int = 1000, seed: int = 0,
            val_fraction: float = 0.5, multiplier: float | None = None, selection: str = "held-out",
            protocol: str = "steerscale-default") -> ModelAnalysis:
    """Everything for one model from its per-item rows (or an ItemTable).

    selection: "held-out" (default) picks each peak on a seeded validation part of the items and reports it on
    the rest; "in-sample" picks and reports on all items, as CAA did (optimistic; noted in the result)."""
    if selection not in SELECTIONS:
        raise SteerscaleError(f"selection {selection!r}: expected one of {', '.join(SELECTIONS)}")
    table = rows_or_table if isinstance(rows_or_table, ItemTable) else ItemTable.from_rows(rows_or_table, model)
    in_sample = selection == "in-sample"
    if in_sample:
        val = test = np.arange(table.n_items)
    else:
        val, test = split_indices(table, val_fraction, seed)
    notes = []
    if in_sample:
        notes.append("in-sample selection (CAA protocol): peak layers are chosen on the same items their effect is "
                     "reported on, which overstates the peak effect")
    peaks = {}
    for sign in (-1, 1):
        if any(m * sign > 0 for m in table.multipliers):
            p = find_peak(table, sign, val, test, multiplier, n_boot, seed, in_sample=in_sample)
            peaks[p.sign] = p
            if p.delta_val * p.s <= 0:
                notes.append(f"no layer moves p the intended way under {p.multiplier:+g} on the validation items; "
                             f"the {p.sign} 'peak' (layer {p.layer}) is only the least-wrong layer")
    asym = None
    if "negative" in peaks and "positive" in peaks:
        if abs(peaks["negative"].multiplier) == abs(peaks["positive"].multiplier):
            asym = asymmetry(table, peaks["negative"], peaks["positive"], test, n_boot, seed)
        else:
            notes.append("no ±m pair of equal size was swept; asymmetry not computed")
    base = baseline(table, n_boot, seed)
    if base["letter_mass"] < 0.5:
        notes.append(f"the unsteered model puts only {base['letter_mass']:.2f} of its probability on the answer "
                     "letters; it may not be reading the A/B format")
    if base["frac_decided"] < 0.25:
        notes.append(f"only {base['frac_decided']:.0%} of items get an unsteered score outside 0.25..0.75: "
                     "the model barely prefers either answer")
    eff = effects(table, n_boot, seed)
    wrong = wrong_way_layers(table)
    for sign, rows in wrong.items():
        if rows:
            notes.append(f"{sign} steering moves p the wrong way (interval beyond 0) at layer(s) "
                         f"{', '.join(str(r['layer']) for r in rows)}; these are reported apart, never as a peak")
    return ModelAnalysis(
        model=table.model, n_params=table.n_params, n_layers=table.n_layers, layers=table.layers,
        multipliers=table.multipliers, n_items=table.n_items, seed=seed, val_fraction=val_fraction,
        baseline=base, effects=eff,
        steerability=steerability(table, n_boot, seed) if len(table.multipliers) > 1 else [],
        peaks=peaks, asymmetry=asym, val_items=[table.items[i] for i in val],
        test_items=[table.items[i] for i in test], notes=notes, wrong_way=wrong, selection=selection,
        protocol=protocol,
    )


def effects_at_peaks(rows_or_table, a: ModelAnalysis, test_set: str, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Δ on another test set (e.g. ``refusal-test-ood``) at the peak layers that `a` chose on its own
    validation items: every item of the other set is a test item. One row per sign of `a`'s peaks, with the
    movement s·Δ, its interval and the same in log-odds of the mean score. The rows must hold the peak layers
    at the peaks' multipliers and at 0."""
    table = rows_or_table if isinstance(rows_or_table, ItemTable) else ItemTable.from_rows(rows_or_table)
    w = bootstrap_weights(table.n_items, n_boot, seed + 5)
    out = []
    for sign, p in a.peaks.items():
        if p.layer not in table.layers or p.multiplier not in table.multipliers:
            raise SteerscaleError(f"test set {test_set}: no rows at layer {p.layer}, multiplier {p.multiplier:+g} "
                                  f"(the {sign} peak of {a.model})")
        sc = table.score[table.layers.index(p.layer), table.multipliers.index(p.multiplier)]
        d = sc - table.baseline
        lo, hi = percentile_ci(w @ d)
        mlo, mhi = (lo, hi) if p.s > 0 else (-hi, -lo)
        lgb = p.s * (_logit(w @ sc) - _logit(w @ table.baseline))
        llo, lhi = percentile_ci(lgb)
        out.append({"model": a.model, "test_set": test_set, "sign": sign, "layer": p.layer,
                    "multiplier": p.multiplier, "n_items": table.n_items, "baseline": float(table.baseline.mean()),
                    "p": float(sc.mean()), "delta": float(d.mean()), "delta_low": lo, "delta_high": hi,
                    "move": p.s * float(d.mean()), "move_low": mlo, "move_high": mhi,
                    "logodds_move": float(p.s * (_logit(sc.mean()) - _logit(table.baseline.mean()))),
                    "logodds_move_low": llo, "logodds_move_high": lhi})
    return out


from .verdicts import (DEPTH_BAND, DEPTH_CLAIM, DEPTH_TOLERANCE, _ci_str, _fmt_num, _fmt_ratio,  # noqa: E402,F401
                       check_asymmetry_claim,
                       check_depth_claim, check_openended)
