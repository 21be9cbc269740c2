"""One model, all of it: :func:`analyze` turns per-item rows into a :class:`ModelAnalysis` (baseline, effects,
slopes, held-out peaks, asymmetry, notes); :func:`effects_at_peaks` measures its peaks on another test set."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import SteerscaleError
from ..stats import bootstrap_weights, percentile_ci
from .asymmetry import Asymmetry, asymmetry
from .effects import _logit, baseline, effects, steerability
from .items import ItemTable
from .peaks import Peak, find_peak, split_indices, wrong_way_layers


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
    screen: dict | None = None  # the sweep manifest's gradient-screen record (mark_screened); None: no screen

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


def mark_screened(a: ModelAnalysis, screen: dict | None) -> ModelAnalysis:
    """Record a sweep's gradient screen (its manifest's ``screen``) on `a`: the peaks become "the best of the N
    exactly measured layers" (``Peak.screened``), and a note says which layers were not measured. The analysis
    itself already uses exact points only (screened-out layers have no rows). No-op for ``screen=None``."""
    if not screen:
        return a
    a.screen = screen
    for p in a.peaks.values():
        p.screened, p.n_measured = True, len(a.layers)
    skipped = screen.get("not_measured") or []
    a.notes.append(f"gradient screen: {len(a.layers)} of {a.n_layers} layers measured exactly (the top "
                   f"{screen.get('confirm_top')} of each sign by d(score)/dm at m = 0 on the validation items, and "
                   f"{len(screen.get('spot_layers') or [])} spot-checked); {len(skipped)} layer(s) not measured: no "
                   f"interval, never a peak; each peak is the best of the measured layers"
                   + ("; the spot check found a screened-out layer beating the K-th confirmed one and widened K"
                      if screen.get("widened") else ""))
    return a
