"""The reliability measures (analysis.reliability) in `steerscale reproduce`: the split-half training of each model
(``<folder>/split_half.json``, keyed on the model's config hash, so an unchanged config is not trained again), and
at report time each model's :class:`~steerscale.analysis.reliability.Reliability` (``<folder>/reliability.json``)
and its report section."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SteerscaleError
from ..io.store import atomic_write_text

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

SPLIT_HALF_FILE = "split_half.json"


def split_half_done(folder: Path, chash: str) -> bool:
    """Whether `folder` holds the split-half result of config hash `chash`."""
    try:
        return json.loads((folder / SPLIT_HALF_FILE).read_text(encoding="utf-8")).get("config_hash") == chash
    except (OSError, ValueError, AttributeError):
        return False


def run_split_half(cfg, m, folder: Path, model: PreTrainedModel, tok, info, train, chash: str) -> dict:
    """Train the two letter-stratified halves of `train` with the model's [sweep] settings and write
    ``split_half.json``; returns the record (with its wall time)."""
    from dataclasses import asdict

    from ..analysis.reliability import split_half_stability

    s = m.sweep
    t0 = time.time()
    sh = split_half_stability(model, tok, train, seed=cfg.run["seed"], template=s["template"], system=s["system"],
                              batch_size=s["batch_size"], info=info,
                              letter_balance=s.get("letter_balance", "balanced"))
    rec = {"config_hash": chash, "split_half": asdict(sh), "seconds": round(time.time() - t0, 1),
           "forward_passes": 2 * len(train) * (2 if s.get("letter_balance") == "swap" else 1)}
    atomic_write_text(folder / SPLIT_HALF_FILE, json.dumps(rec, indent=2) + "\n")
    return rec


def model_reliability(cfg, a, folder: Path):
    """One model's Reliability at report time: per-item steerability from ``items.csv`` (all its items), the
    split-half record if there is one, and the matching letters of the items in ``items.csv`` (read from the
    [data] test set); written to ``<folder>/reliability.json``."""
    from ..analysis.items import ItemTable, read_items_csv
    from ..analysis.reliability import Reliability, SplitHalf, LetterBalance, item_steerability, letter_balance
    from ..core.data import load_dataset

    table = ItemTable.from_rows(read_items_csv(folder / "items.csv"), a.model)
    rel = Reliability(a.model, steerability=item_steerability(table, cfg.run["n_bootstrap"], cfg.run["seed"]))
    p = folder / SPLIT_HALF_FILE
    if p.is_file():
        try:
            d = json.loads(p.read_text(encoding="utf-8"))["split_half"]
            rel.split_half = SplitHalf(**dict(d, letters_a=LetterBalance(**d["letters_a"]),
                                              letters_b=LetterBalance(**d["letters_b"])))
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("%s: %s unreadable (%s); split-half left out of the report", a.model, p, e)
    try:
        ids = set(table.items)
        items = [it for it in load_dataset(cfg.data["test"]) if it.id in ids]
        if len(items) == len(ids):
            rel.test_letters = letter_balance(items)
        else:
            log.warning("%s: %d of the %d items of items.csv are in %s; test letters left out", a.model,
                        len(items), len(ids), cfg.data["test"])
    except SteerscaleError as e:
        log.warning("%s: test letters left out (%s)", a.model, e)
    atomic_write_text(folder / "reliability.json", json.dumps(rel.to_dict(), indent=2) + "\n")
    return rel


def _letter_figures(folder: Path):
    """The letter figures of the model folder's vectors (None without a file or without figures in it)."""
    from ..errors import SteerscaleError
    from ..core.letters import LetterFigures
    from ..io.tensorio import read_safetensors, json_meta

    path = folder / "vectors.safetensors"
    if not path.is_file():
        return None
    try:
        _, meta = read_safetensors(path)
        return LetterFigures.from_meta(json_meta(path, meta))
    except SteerscaleError:
        return None


def reliability_sections(cfg, analyses, folders: dict) -> dict:
    """model -> its report section (reliability_section), at the model's peak layers."""
    from .config import slug
    from ..report.reliability_section import reliability_section

    out = {}
    for a in analyses:
        if a.model not in folders:
            continue
        rel = model_reliability(cfg, a, Path(folders[a.model]))
        peaks = sorted({p.layer for p in a.peaks.values()})
        out[a.model] = reliability_section(rel, peaks, anchor=f"reliability-{slug(a.model)}",
                                           letters=_letter_figures(Path(folders[a.model])))
    return out


def model_sections(cfg, analyses, folders: dict, showcase: list) -> list:
    """Per model, its showcase section (from `showcase`, if any) then its reliability section."""
    from .config import slug

    shown = {s.anchor: s for s in showcase}
    rel = reliability_sections(cfg, analyses, folders)
    return [s for model in folders for s in (shown.get(f"showcase-{slug(model)}"), rel.get(model)) if s is not None]
