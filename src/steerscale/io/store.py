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
    points/<model>__i002of004__L<layer>__m<multiplier>.json
                             the same for item shard 2 of 4 (runs planned with item shards, plan.py)
    locks/<writer>.lock      held (fcntl.flock) by the process writing that shard; the lock dies with
                             the process, so a crash never leaves a stale lock behind

The final tables (items.csv, aggregate.csv, ...) are always rebuilt from the
point files, so an interrupted-and-resumed run writes the same bytes as an
uninterrupted one. Every point file names the run (a hash of run.json), its
layer, multiplier and item shard, and a sha256 of its rows; a file that fails
any of these checks (damaged, from another run, or copied over another point)
is ignored with a warning and recomputed.

Several writers: the shards of one run (different ``writer`` names) may write
one folder at once, from several hosts on a shared filesystem. Temporary files
carry host, pid and a random id, so they never collide, and opening a store
never touches another writer's temporary files; only the driver of a run (or
``steerscale merge``) removes stale ones (``clean_stale_temps``). Two processes
with the same writer name are refused: the second gets a one-line error. A point
is a deterministic function of the run and its unit, so a retried unit rewrites
the same bytes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import time
from pathlib import Path

from ..errors import SteerscaleError

log = logging.getLogger(__name__)

STORE_VERSION = 2  # 2: point files carry the run hash, layer, multiplier and item shard; shard plans
STALE_TEMP_MINUTES = 60.0  # a temporary file of another host is stale after this long without change


def _write_all(f, data: bytes) -> None:
    """The one place bytes hit a file (tests simulate a full disk here)."""
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
    if os.fstat(f.fileno()).st_size != len(data):  # a short write the library did not report
        raise OSError(errno.ENOSPC, "No space left on device (short write)")


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


def host_name() -> str:
    """This host's name as a file-name component (no dots: they separate the parts of a temp name)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:40].strip("-") or "host"


def temp_name(path: Path) -> Path:
    """A hidden temporary name beside `path`, unique across hosts, processes and calls."""
    return path.with_name(f".{path.name}.{host_name()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` so that no reader ever sees a partial file."""
    path = Path(path)
    tmp = temp_name(path)
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
    probe = folder / f".steerscale-write-test.{host_name()}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            _write_all(f, b"ok")
    except OSError as e:
        raise os_error(f"output folder {folder}", e, "not writable") from None
    finally:  # a failed probe (full disk, quota) leaves no file behind
        try:
            probe.unlink()
        except OSError:
            pass
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


def identity_hash(identity: dict) -> str:
    """The short hash of a run identity that every point file of the run carries."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StoreLock:
    """An exclusive, non-blocking ``fcntl.flock`` on ``folder/locks/<name>.lock``, held until ``release``.

    The kernel drops the lock when the process dies (even on SIGKILL), so a crashed run never leaves a
    stale lock. The file records who holds it, for the refusal message. On a network filesystem flock
    must be supported across hosts (NFSv4, Lustre, GPFS, CephFS, BeeGFS do; see docs/scaling_out.md).
    """

    def __init__(self, folder: Path, name: str):
        import fcntl

        locks = Path(folder) / "locks"
        try:
            locks.mkdir(exist_ok=True)
            self.path = inside(locks, f"{safe_name(name)}.lock")
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise os_error(locks, e) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = ""
            try:
                holder = os.pread(self._fd, 200, 0).decode("utf-8", "replace").strip()
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = holder or "pid ?, host ?"
                raise SteerscaleError(f"output folder {folder} ({name}) is in use by another process ({who}); "
                                      f"wait for it to finish, or use another --out folder") from None
            raise os_error(self.path, e, "cannot lock") from None
        info = f"pid {os.getpid()}, host {socket.gethostname()}".encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, info, 0)

    def release(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    __del__ = release


# .NAME.HOST.PID.RAND.tmp (temp_name), or .NAME.PID.tmp (store version 1)
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
_TEMP_V1 = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")


def clean_stale_temps(folder, max_age_minutes: float = STALE_TEMP_MINUTES) -> list[Path]:
    """Remove temporary files under `folder` (and `folder/points`) that no live writer will rename.

    A temp file is stale when its writer ran on this host and that pid is gone, or when it has not
    changed for `max_age_minutes` (writers on other hosts, whose pids cannot be checked). Only the
    driver of a run and ``merge`` call this; opening a store never does. Returns the removed paths.
    """
    me, removed = host_name(), []
    now = time.time()
    for d in (Path(folder), Path(folder) / "points"):
        if not d.is_dir():
            continue
        for p in d.glob(".*.tmp"):
            m = _TEMP.match(p.name) or _TEMP_V1.match(p.name)
            try:
                age_min = (now - p.stat().st_mtime) / 60
            except OSError:
                continue
            stale = age_min > max_age_minutes
            if m and not stale and m.groupdict().get("host") in (None, me):
                stale = not _pid_alive(int(m["pid"]))
            if stale:
                try:
                    p.unlink()
                    removed.append(p)
                except OSError:
                    pass
    return removed


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ResultsStore:
    """The finished points of one sweep run, one atomically written JSON file per point.

    ``ResultsStore(folder, identity)`` opens (or starts) the run in `folder`; a folder holding another
    setup is refused. ``lock``: the writer name whose lock this store holds (``locks/<lock>.lock``;
    default ``"run"``, the serial run; ``"shard-3of16"`` for a static shard; None for a worker whose
    driver holds the locks). ``get``/``put`` take ``part``, the item shard tag of the point (None when
    the run has one item shard).
    """

    def __init__(self, folder, identity: dict, lock: str | None = "run"):
        self.folder = check_writable_folder(folder)
        self.points = self.folder / "points"
        self.identity = dict(identity, store_version=STORE_VERSION)
        self.run_hash = identity_hash(json.loads(json.dumps(self.identity, default=str)))
        self._locks: list[StoreLock] = []
        if lock is not None:
            self.lock(lock)
        self._check_identity()
        try:
            self.points.mkdir(exist_ok=True)
        except OSError as e:
            raise os_error(self.points, e) from None

    def lock(self, name: str) -> None:
        """Hold the writer lock `name` for the life of this store (refused if another process holds it)."""
        self._locks.append(StoreLock(self.folder, name))

    def close(self) -> None:
        for lk in self._locks:
            lk.release()
        self._locks = []

    def clean_stale_temps(self, max_age_minutes: float = STALE_TEMP_MINUTES) -> list[Path]:
        return clean_stale_temps(self.folder, max_age_minutes)

    # ---------------------------------------------------------------- identity
    def _check_identity(self) -> None:
        path = self.folder / "run.json"
        if not path.exists():
            if (self.folder / "points").is_dir() and any((self.folder / "points").glob("*.json")):
                raise SteerscaleError(f"{self.folder}: holds points but no run.json; use a new output folder")
            # Exclusive create (link of a finished temp file; atomic on NFS too): of several processes
            # starting a run in one folder at once, one record wins and the others compare against it.
            data = (json.dumps(self.identity, indent=2, sort_keys=True, default=str) + "\n").encode()
            tmp = temp_name(path)
            try:
                with open(tmp, "wb") as f:
                    _write_all(f, data)
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass
                finally:
                    tmp.unlink()
            except OSError as e:
                raise os_error(path, e) from None
            _fsync_dir(self.folder)
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SteerscaleError(f"{path}: unreadable run record ({e}); use a new output folder") from None
        new = json.loads(json.dumps(self.identity, default=str))  # same JSON types as the stored record
        diffs = _diff(old, new)
        if diffs:
            shown = "; ".join(f"{k}: {o} vs {n}" for k, o, n in diffs[:6])
            more = f" (+{len(diffs) - 6} more)" if len(diffs) > 6 else ""
            raise SteerscaleError(
                f"output folder {self.folder} holds a run with a different setup ({shown}{more}; "
                f"old vs new); use a new --out folder or delete this one"
            )

    # ---------------------------------------------------------------- points
    def _path(self, model: str, layer: int | None, m: float | None, part: str | None = None) -> Path:
        pre = f"{safe_name(model)}__{safe_name(part)}" if part else safe_name(model)
        if layer is None:
            name = f"{pre}__baseline.json"
        else:
            name = f"{pre}__L{int(layer):04d}__m{safe_name(repr(float(m) + 0.0))}.json"
        return inside(self.points, name)

    def _key(self, model: str, layer, m, part) -> dict:
        return {"run": self.run_hash, "model": model, "layer": None if layer is None else int(layer),
                "multiplier": None if m is None else float(m) + 0.0, "part": part}

    def get(self, model: str, layer: int | None, m: float | None = None, part: str | None = None) -> list[dict] | None:
        """Rows of a finished point, or None when it is missing, damaged, or not this point of this run."""
        p = self._path(model, layer, m, part)
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
        want = self._key(model, layer, m, part)
        got = {k: rec.get(k) for k in want}
        if got != want:
            bad = ", ".join(f"{k} {got[k]!r} (expected {want[k]!r})" for k in want if got[k] != want[k])
            log.warning("%s: point file of another point or run (%s); recomputing it", p, bad)
            return None
        return rows

    def put(self, model: str, layer: int | None, m: float | None, rows: list[dict], part: str | None = None) -> Path:
        """Write one point atomically. Same run, point and rows give the same bytes (a retry is idempotent)."""
        rec = dict(self._key(model, layer, m, part), rows=rows, sha256=_rows_digest(rows))
        return atomic_write_text(self._path(model, layer, m, part), json.dumps(rec) + "\n")

    # ---------------------------------------------------------------- records (e.g. the gradient screen)
    def _record_path(self, model: str, key: str) -> Path:
        return inside(self.points, f"{safe_name(model)}__record-{safe_name(key)}.json")

    def get_record(self, model: str, key: str) -> dict | None:
        """A finished record of this run (``put_record``), or None when missing, damaged or of another run."""
        p = self._record_path(model, key)
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
            ok = rec.get("sha256") == _rows_digest(rec["data"]) and rec.get("run") == self.run_hash \
                and rec.get("record") == key
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            log.warning("%s: damaged record or one of another run, recomputing it", p)
            return None
        return rec["data"]

    def put_record(self, model: str, key: str, data: dict) -> Path:
        """Write a JSON record of this run atomically under `key` (checked like a point on ``get_record``)."""
        rec = {"run": self.run_hash, "model": model, "record": key, "data": data, "sha256": _rows_digest(data)}
        return atomic_write_text(self._record_path(model, key), json.dumps(rec) + "\n")


def _diff(old, new, prefix: str = "") -> list[tuple[str, object, object]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _diff(old.get(k, "<absent>"), new.get(k, "<absent>"), f"{prefix}{k}.")
        return out
    return [] if old == new else [(prefix.rstrip("."), json.dumps(old), json.dumps(new))]
