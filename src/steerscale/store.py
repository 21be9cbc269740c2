"""Crash-safe files: atomic writes, safe file names, and the resumable results store of a sweep.

Atomic write: bytes go to a hidden temporary file in the same folder, are
flushed and fsync'd, then ``os.replace``'d onto the final name (and the folder
is fsync'd), so a reader sees the old file or the whole new one, never part of
one. A full disk or an unwritable folder is a one-line SteerscaleError.

Results store layout (a run folder)::

    run.json                 what this run is: config, model identity, dataset and vectors hashes
    points/<model>__L<layer>__m<multiplier>.json
                             one finished (model, layer, multiplier) point: its per-item rows and
                             a sha256 of them; written atomically as soon as the point is done
    points/<model>__baseline.json
                             the unsteered scores (multiplier 0), computed once per run

The final tables (items.csv, aggregate.csv, ...) are always rebuilt from the
point files, so an interrupted-and-resumed run writes the same bytes as an
uninterrupted one. A point file that fails its checksum is ignored (and
recomputed); stray temporary files from a killed run are removed on open.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
from pathlib import Path

from .errors import SteerscaleError

log = logging.getLogger(__name__)

STORE_VERSION = 1


def _write_all(f, data: bytes) -> None:
    """The one place bytes hit a file (tests simulate a full disk here)."""
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


def os_error(path, e: OSError, action: str = "cannot write") -> SteerscaleError:
    """A one-line error for an OSError on `path`, saying plainly when the disk is full."""
    if e.errno == errno.ENOSPC:
        return SteerscaleError(f"{path}: disk is full (no space left on device); free space and re-run "
                               f"the same command to continue where it stopped")
    if e.errno == errno.EDQUOT:
        return SteerscaleError(f"{path}: disk quota exceeded; free space and re-run the same command")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return SteerscaleError(f"{path}: {action}: permission denied or read-only file system")
    return SteerscaleError(f"{path}: {action} ({e.strerror or type(e).__name__})")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` so that no reader ever sees a partial file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            _write_all(f, data)
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise os_error(path, e) from None
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_writable_folder(folder) -> Path:
    """Create `folder` if needed and prove it is writable by writing a file (works as root too)."""
    folder = Path(folder)
    for parent in [folder, *folder.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise SteerscaleError(f"output folder {folder}: {parent} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".steerscale-write-test.{os.getpid()}"
        with open(probe, "wb") as f:
            _write_all(f, b"ok")
        probe.unlink()
    except OSError as e:
        raise os_error(f"output folder {folder}", e, "not writable") from None
    return folder


_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def safe_name(text: str, max_len: int = 80) -> str:
    """A file-name component from a user value: no separators, no '..', never empty or hidden.

    Names that had to change get a short hash of the original, so two different
    values never map to the same name.
    """
    s = _UNSAFE.sub("_", str(text))
    s = re.sub(r"\.{2,}", "_", s).strip("._") or "x"
    if s != str(text) or len(s) > max_len:
        s = f"{s[:max_len]}-{hashlib.sha256(str(text).encode()).hexdigest()[:8]}"
    return s


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, refusing anything that would land outside `folder`."""
    p = (folder / name).resolve()
    if folder.resolve() not in p.parents:
        raise SteerscaleError(f"file name {name!r}: would be written outside {folder}")
    return p


def tensor_hash(t) -> str:
    import torch

    t = t.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256(str(tuple(t.shape)).encode())
    h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def _rows_digest(rows) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


class ResultsStore:
    """The finished points of one sweep run, one atomically written JSON file per point."""

    def __init__(self, folder, identity: dict):
        self.folder = check_writable_folder(folder)
        self.points = self.folder / "points"
        self.identity = dict(identity, store_version=STORE_VERSION)
        self._check_identity()
        try:
            self.points.mkdir(exist_ok=True)
            for stray in self.points.glob(".*.tmp"):
                stray.unlink()
        except OSError as e:
            raise os_error(self.points, e) from None

    # ---------------------------------------------------------------- identity
    def _check_identity(self) -> None:
        path = self.folder / "run.json"
        if not path.exists():
            if (self.folder / "points").is_dir() and any((self.folder / "points").glob("*.json")):
                raise SteerscaleError(f"{self.folder}: holds points but no run.json; use a new output folder")
            atomic_write_text(path, json.dumps(self.identity, indent=2, sort_keys=True) + "\n")
            return
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SteerscaleError(f"{path}: unreadable run record ({e}); use a new output folder") from None
        new = json.loads(json.dumps(self.identity))  # same JSON types as the stored record
        diffs = _diff(old, new)
        if diffs:
            shown = "; ".join(f"{k}: {o} vs {n}" for k, o, n in diffs[:6])
            more = f" (+{len(diffs) - 6} more)" if len(diffs) > 6 else ""
            raise SteerscaleError(
                f"output folder {self.folder} holds a run with a different setup ({shown}{more}; "
                f"old vs new); use a new --out folder or delete this one"
            )

    # ---------------------------------------------------------------- points
    def _path(self, model: str, layer: int | None, m: float | None) -> Path:
        if layer is None:
            name = f"{safe_name(model)}__baseline.json"
        else:
            name = f"{safe_name(model)}__L{int(layer):04d}__m{safe_name(repr(float(m) + 0.0))}.json"
        return inside(self.points, name)

    def get(self, model: str, layer: int | None, m: float | None = None) -> list[dict] | None:
        """Rows of a finished point, or None when it is missing or fails its checksum."""
        p = self._path(model, layer, m)
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
            rows = rec["rows"]
            ok = rec.get("sha256") == _rows_digest(rows)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            log.warning("%s: damaged point file, recomputing it", p)
            return None
        return rows

    def put(self, model: str, layer: int | None, m: float | None, rows: list[dict]) -> Path:
        rec = {"model": model, "layer": layer, "multiplier": m, "rows": rows, "sha256": _rows_digest(rows)}
        return atomic_write_text(self._path(model, layer, m), json.dumps(rec) + "\n")


def _diff(old, new, prefix: str = "") -> list[tuple[str, object, object]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _diff(old.get(k, "<absent>"), new.get(k, "<absent>"), f"{prefix}{k}.")
        return out
    return [] if old == new else [(prefix.rstrip("."), json.dumps(old), json.dumps(new))]
