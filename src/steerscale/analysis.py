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
- peak: for each multiplier sign, the layer with the largest |Δ| on a seeded
  *validation* half of the items; its effect is reported on the other, *test*
  half, so the layer is never picked and reported on the same items.
- asymmetry: |Δ(−m)| / |Δ(+m)|, each at its own peak layer (chosen on the
  validation items), measured on the test items with a paired bootstrap; the
  difference |Δ(−m)| − |Δ(+m)| is given too (stable when |Δ(+m)| is near 0).
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .data import split_items
from .errors import SteerscaleError

LEVEL = 0.95


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


def bootstrap_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n] resampling weights (counts / n): row b averages resample b when used as ``x @ w``."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    w = np.zeros((n_boot, n))
    np.add.at(w, (np.arange(n_boot)[:, None], idx), 1.0)
    return w / n


def percentile_ci(samples, level: float = LEVEL) -> tuple[float, float]:
    s = np.asarray(samples, dtype=np.float64)
    s = s[~np.isnan(s)]
    if s.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(s, a)), float(np.quantile(s, 1 - a))


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
    """The peak layer for one multiplier sign: chosen on validation items, effect reported on test items."""

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

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def expected_direction(self) -> bool:
        return (self.delta > 0) == (self.multiplier > 0)


def find_peak(table: ItemTable, sign: int, val_idx, test_idx, multiplier: float | None = None,
              n_boot: int = 1000, seed: int = 0) -> Peak:
    """Layer with the largest |Δ| for this sign on the validation items; Δ there on the test items."""
    m = _sign_multiplier(table, sign, multiplier)
    j = table.multipliers.index(m)
    d = table.score[:, j, :] - table.baseline[None, :]  # [L, n]
    val_idx, test_idx = np.asarray(val_idx), np.asarray(test_idx)
    if set(val_idx.tolist()) & set(test_idx.tolist()):
        raise SteerscaleError("validation and test items overlap")
    dv = d[:, val_idx].mean(1)
    i = int(np.argmax(np.abs(dv)))
    layer = table.layers[i]
    # uncertainty of the choice itself: re-select on resampled validation items
    wv = bootstrap_weights(len(val_idx), n_boot, seed + 1)
    sel = np.argmax(np.abs(d[:, val_idx] @ wv.T), axis=0)  # [B]
    sel_depth = np.array([table.depth(table.layers[k]) for k in sel])
    dlo, dhi = percentile_ci(sel_depth)
    wt = bootstrap_weights(len(test_idx), n_boot, seed + 2)
    dt = d[i, test_idx]
    lo, hi = percentile_ci(wt @ dt)
    moved = d[i, test_idx] * np.sign(m)
    return Peak(
        sign="positive" if sign > 0 else "negative", multiplier=m, layer=layer, depth=table.depth(layer),
        depth_alt=table.depth_alt(layer), delta_val=float(dv[i]), delta=float(dt.mean()), ci_low=lo, ci_high=hi,
        p=float(table.score[i, j, test_idx].mean()), depth_ci_low=dlo, depth_ci_high=dhi,
        selection_stability=float(np.mean(sel == i)), frac_wrong_way=float(np.mean(moved < -1e-6)),
        n_val=len(val_idx), n_test=len(test_idx),
    )


@dataclass
class Asymmetry:
    """|Δ(−m)| / |Δ(+m)| at each sign's peak layer, on the test items, with paired bootstrap intervals."""

    magnitude: float
    layer_negative: int
    layer_positive: int
    abs_negative: float
    abs_positive: float
    ratio: float
    ratio_low: float
    ratio_high: float
    diff: float  # |Δ(−m)| − |Δ(+m)|
    diff_low: float
    diff_high: float
    n_test: int


def asymmetry(table: ItemTable, neg: Peak, pos: Peak, test_idx, n_boot: int = 1000, seed: int = 0) -> Asymmetry:
    if abs(neg.multiplier) != abs(pos.multiplier):
        raise SteerscaleError(f"asymmetry needs ±m of the same size, got {neg.multiplier:+g} and {pos.multiplier:+g}")
    test_idx = np.asarray(test_idx)
    jn, jp = table.multipliers.index(neg.multiplier), table.multipliers.index(pos.multiplier)
    ln, lp = table.layers.index(neg.layer), table.layers.index(pos.layer)
    dn = (table.score[ln, jn] - table.baseline)[test_idx]
    dp = (table.score[lp, jp] - table.baseline)[test_idx]
    w = bootstrap_weights(len(test_idx), n_boot, seed + 3)  # the same resampled items for both terms
    an, ap = np.abs(w @ dn), np.abs(w @ dp)
    with np.errstate(divide="ignore", invalid="ignore"):
        rb = np.where(ap > 0, an / ap, np.where(an > 0, np.inf, 1.0))
    a_n, a_p = abs(float(dn.mean())), abs(float(dp.mean()))
    ratio = a_n / a_p if a_p > 0 else float("inf")
    # percentiles over the ratio with infinities kept (they sort last)
    qs = np.quantile(np.sort(rb), [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2], method="inverted_cdf")
    dlo, dhi = percentile_ci(an - ap)
    return Asymmetry(abs(neg.multiplier), neg.layer, pos.layer, a_n, a_p, ratio, float(qs[0]), float(qs[1]),
                     a_n - a_p, dlo, dhi, len(test_idx))


# ---------------------------------------------------------------- one model, all of it


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

    @property
    def n_params_b(self) -> float:
        return self.n_params / 1e9

    def peak_abs(self, which: str = "max") -> tuple[float, float, float] | None:
        """(|Δ|, low, high) at the peak for 'negative', 'positive' or 'max' (the sign with the larger |Δ|)."""
        cands = [self.peaks[k] for k in (("negative", "positive") if which == "max" else (which,)) if k in self.peaks]
        if not cands:
            return None
        p = max(cands, key=lambda p: abs(p.delta))
        lo, hi = sorted((abs(p.ci_low), abs(p.ci_high)))
        if p.ci_low <= 0 <= p.ci_high:
            lo = 0.0
        return abs(p.delta), lo, hi

    def to_dict(self) -> dict:
        d = asdict(self)
        return d


def analyze(rows_or_table, model: str | None = None, n_boot: int = 1000, seed: int = 0,
            val_fraction: float = 0.5, multiplier: float | None = None) -> ModelAnalysis:
    """Everything for one model from its per-item rows (or an ItemTable)."""
    table = rows_or_table if isinstance(rows_or_table, ItemTable) else ItemTable.from_rows(rows_or_table, model)
    val, test = split_indices(table, val_fraction, seed)
    notes = []
    peaks = {}
    for sign in (-1, 1):
        if any(m * sign > 0 for m in table.multipliers):
            p = find_peak(table, sign, val, test, multiplier, n_boot, seed)
            peaks[p.sign] = p
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
    return ModelAnalysis(
        model=table.model, n_params=table.n_params, n_layers=table.n_layers, layers=table.layers,
        multipliers=table.multipliers, n_items=table.n_items, seed=seed, val_fraction=val_fraction,
        baseline=base, effects=effects(table, n_boot, seed),
        steerability=steerability(table, n_boot, seed) if len(table.multipliers) > 1 else [],
        peaks=peaks, asymmetry=asym, val_items=[table.items[i] for i in val],
        test_items=[table.items[i] for i in test], notes=notes,
    )


# ---------------------------------------------------------------- claims


DEPTH_CLAIM = 0.4
DEPTH_TOLERANCE = 0.1


def check_depth_claim(a: ModelAnalysis, sign: str = "negative") -> dict:
    """Paper: the effect peaks at about 40% depth. Supported when the held-out peak is real (test interval
    excludes 0) and its depth is within ±0.1 of 0.4; not supported when it is real and the whole bootstrap
    interval of the selected depth lies outside that band; otherwise inconclusive."""
    p = a.peaks.get(sign)
    if p is None:
        return {"claim": f"{sign} steering peaks at ~40% depth", "model": a.model, "verdict": "inconclusive",
                "why": f"no {sign} multiplier swept", "numbers": ""}
    band = (DEPTH_CLAIM - DEPTH_TOLERANCE, DEPTH_CLAIM + DEPTH_TOLERANCE)
    nums = (f"{sign} peak at layer {p.layer} of {a.n_layers} (depth {p.depth:.2f} = L/n_layers, "
            f"{p.depth_alt:.2f} = L/(n_layers−1); depth interval [{p.depth_ci_low:.2f}, {p.depth_ci_high:.2f}]; "
            f"chosen in {p.selection_stability:.0%} of validation resamples); test Δ = {p.delta:+.3f} "
            f"[{p.ci_low:+.3f}, {p.ci_high:+.3f}] on {p.n_test} items")
    if not p.significant:
        verdict, why = "inconclusive", "the effect at the chosen layer is not distinguishable from 0 on test items"
    elif band[0] <= p.depth <= band[1]:
        verdict, why = "supported", f"depth {p.depth:.2f} is within {band[0]:.1f}–{band[1]:.1f}"
    elif p.depth_ci_high < band[0] or p.depth_ci_low > band[1]:
        verdict, why = "not supported", f"the depth interval lies outside {band[0]:.1f}–{band[1]:.1f}"
    else:
        verdict, why = "inconclusive", f"depth {p.depth:.2f} is outside {band[0]:.1f}–{band[1]:.1f} but its interval reaches it"
    if p.significant and not p.expected_direction:
        why += "; note: the effect goes against the multiplier's sign"
    return {"claim": f"{sign} steering peaks at ~40% depth", "model": a.model, "verdict": verdict, "why": why,
            "numbers": nums}


def check_asymmetry_claim(a: ModelAnalysis) -> dict:
    """Paper: negative steering is stronger than positive. Supported when |Δ(−m)| − |Δ(+m)| has an interval
    above 0, not supported when below 0, otherwise inconclusive."""
    s = a.asymmetry
    claim = "negative steering is stronger than positive"
    if s is None:
        return {"claim": claim, "model": a.model, "verdict": "inconclusive", "why": "no ±m pair swept", "numbers": ""}
    nums = (f"|Δ(−{s.magnitude:g})| = {s.abs_negative:.3f} (layer {s.layer_negative}), |Δ(+{s.magnitude:g})| = "
            f"{s.abs_positive:.3f} (layer {s.layer_positive}); ratio {_fmt_ratio(s.ratio)} "
            f"[{_fmt_ratio(s.ratio_low)}, {_fmt_ratio(s.ratio_high)}]; difference {s.diff:+.3f} "
            f"[{s.diff_low:+.3f}, {s.diff_high:+.3f}] on {s.n_test} test items")
    if s.diff_low > 0:
        verdict, why = "supported", "the difference's interval is above 0"
    elif s.diff_high < 0:
        verdict, why = "not supported", "positive steering is stronger (interval below 0)"
    else:
        verdict, why = "inconclusive", "the difference's interval includes 0"
    return {"claim": claim, "model": a.model, "verdict": verdict, "why": why, "numbers": nums}


def _fmt_ratio(x: float) -> str:
    return "∞" if math.isinf(x) else ("n/a" if math.isnan(x) else f"{x:.2f}")


# ---------------------------------------------------------------- open-ended refusal (openended.run_openended)


def _ci_str(r: dict, key: str, fmt: str = "{:+.2f}") -> str:
    """'value [low, high]' of an aggregate column (value alone when the row has no interval)."""
    v = r.get(key)
    if v is None or v != v:
        return "n/a"
    lo, hi = r.get(f"{key}_low"), r.get(f"{key}_high")
    if lo is None or hi is None:
        return fmt.format(v)
    return f"{fmt.format(v)} [{_fmt_num(lo, fmt)}, {_fmt_num(hi, fmt)}]"


def _fmt_num(x, fmt: str) -> str:
    return "n/a" if x is None or x != x else fmt.format(x)


def _beyond_zero(r: dict, key: str, sign: int) -> bool:
    """The interval of `key` lies entirely on the `sign` side of 0."""
    lo, hi = r.get(f"{key}_low"), r.get(f"{key}_high")
    return (lo is not None and lo == lo and lo > 0) if sign > 0 else (hi is not None and hi == hi and hi < 0)


def check_openended(aggregate: list[dict], ce_bound: float | None = None) -> list[dict]:
    """Per multiplier sign (its largest |m|, single-layer points): does steering move the refusal log-odds on
    harmful prompts more than on harmless ones, in the multiplier's direction, and at what cross-entropy cost?

    The layer examined is the one with the largest change on harmful prompts in the multiplier's direction,
    chosen on the same prompts (optimistic). Supported when the interval of (Δ harmful − Δ harmless) at that
    layer lies on the multiplier's side of 0, not supported when it lies on the other side, else inconclusive.
    The CE increase there is "under" the bound when its whole interval is <= the bound, "over" when above it.
    """
    rows = [r for r in aggregate if r["width"] == 1]
    base = next((r for r in rows if r["multiplier"] == 0), {})
    out = []
    for sign, name in ((-1, "negative"), (1, "positive")):
        ms = {r["multiplier"] for r in rows if r["multiplier"] * sign > 0}
        if not ms:
            continue
        m = max(ms, key=abs)
        rs = [r for r in rows if r["multiplier"] == m]
        best = max(rs, key=lambda r: -math.inf if math.isnan(r["delta_logodds_harmful"])
                   else sign * r["delta_logodds_harmful"])
        direction = "up" if sign > 0 else "down"
        claim = f"{name} steering (m = {m:+g}) moves open-ended refusal {direction} on harmful prompts more than on harmless"
        if _beyond_zero(best, "delta_logodds_contrast", sign):
            verdict, why = "supported", "the interval of the difference lies on the multiplier's side of 0"
        elif _beyond_zero(best, "delta_logodds_contrast", -sign):
            verdict, why = "not supported", "harmless prompts move more (the difference's interval is on the other side of 0)"
        else:
            verdict, why = "inconclusive", "the interval of the difference includes 0"
        n_sel = sum(_beyond_zero(r, "delta_logodds_contrast", sign) for r in rs)
        ce_verdict = None
        if ce_bound is not None and best.get("ce_delta") == best.get("ce_delta"):
            lo, hi = best.get("ce_delta_low", best["ce_delta"]), best.get("ce_delta_high", best["ce_delta"])
            ce_verdict = "under" if hi <= ce_bound else ("over" if lo > ce_bound else "straddles")
        n_under = sum(r.get("ce_delta", math.nan) <= ce_bound for r in rs) if ce_bound is not None else None
        why = (f"at layer {best['layer_start']} (largest change on harmful prompts, chosen on these same prompts): "
               f"{why}; harmful moved more than harmless at {n_sel} of {len(rs)} layers")
        if ce_verdict:
            why += (f"; CE increase at that layer is {ce_verdict} the bound {ce_bound:g} nats/token"
                    + (" (interval straddles it)" if ce_verdict == "straddles" else "")
                    + f", and its point estimate is within the bound at {n_under} of {len(rs)} layers")
        nums = (f"layer {best['layer_start']}, m = {m:+g}: Δ refusal log-odds harmful {_ci_str(best, 'delta_logodds_harmful')}"
                f" (n = {best.get('n_harmful', '?')}), harmless {_ci_str(best, 'delta_logodds_harmless')} "
                f"(n = {best.get('n_harmless', '?')}), difference {_ci_str(best, 'delta_logodds_contrast')}; "
                f"CE increase {_ci_str(best, 'ce_delta', '{:+.3f}')} nats/token; phrase refusal on harmful "
                f"generations {_fmt_num(base.get('phrase_refusal_harmful'), '{:.2f}')} unsteered → "
                f"{_fmt_num(best.get('phrase_refusal_harmful'), '{:.2f}')}")
        out.append({"claim": claim, "model": best["model"], "sign": name, "multiplier": m, "layer": best["layer_start"],
                    "verdict": verdict, "ce_bound": ce_bound, "ce_verdict": ce_verdict, "n_layers_selective": n_sel,
                    "n_layers_under_bound": n_under, "n_layers": len(rs), "why": why, "numbers": nums})
    return out
