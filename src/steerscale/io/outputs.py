"""One output guard for every command that writes: files written whole or not at all, folders swapped in whole.

Contracts (each failure is a one-line SteerscaleError naming the path):

* ``check_out_file(path, flag)``: the output may only be a regular file or a new name (a directory, device,
  FIFO or socket is refused and never replaced), never under a system folder (``guards.check_output_file``),
  and its folder must be writable (proved by a probe file that is always removed).
* ``write_file(path, write, verify)``: ``write(tmp)`` writes the file under a hidden temporary name beside
  `path`; the file is fsync'd, its size checked against what ``verify(tmp)`` reads back (a short write under a
  full disk or ``ulimit -f`` never reaches the final name), then renamed over `path`. On any failure the
  temporary file is removed and `path` is left as it was.
* ``build_folder(target, build, force, sources)``: ``build(tmp)`` fills a new folder created under a hidden
  temporary name beside `target`; only once it is complete is it put in place, by an atomic exchange
  (``renameat2(RENAME_EXCHANGE)`` on Linux) with an existing target, so a reader — or a ``kill -9`` at any
  moment — sees the old folder intact or the new one complete, never a mix. A non-empty target is replaced
  only with ``force``; a target that is, contains or lies inside one of `sources` (the input model) is
  always refused. Leftover temporary folders of killed runs (their process gone) are removed.
* ``fault_point(name)``: a test hook: when the environment variable ``STEERSCALE_FAULT_POINT`` equals
  `name`, the process kills itself with SIGKILL there (the kill -9 tests use it between artifacts).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
from pathlib import Path
from typing import Callable

from ..errors import SteerscaleError
from .guards import check_output_file, check_output_folder
from .store import _fsync_dir, _pid_alive, check_writable_folder, host_name, os_error, temp_name

FAULT_ENV = "STEERSCALE_FAULT_POINT"
_DISK_WORDS = ("No space left", "File too large", "Disk quota")


def fault_point(name: str) -> None:
    """Die here with SIGKILL when STEERSCALE_FAULT_POINT names this point (fault-injection tests only)."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def check_out_file(path, flag: str = "--out", expected: str = "a file name", suffix: str | None = None) -> Path:
    """An output file path that steerscale may write (module doc); its folder is created if needed."""
    p = check_output_file(path, flag, expected)
    if suffix is not None and p.suffix.lower() != suffix:
        raise SteerscaleError(f"{flag} {path}: expected {expected} ending in {suffix}")
    check_writable_folder(p.parent if str(p.parent) else Path("."))
    return p


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _as_error(path, e: BaseException) -> SteerscaleError | None:
    """A one-line error for a failed write (OSError, or a library's error that wraps ENOSPC/EFBIG)."""
    if isinstance(e, SteerscaleError):
        return e
    if isinstance(e, OSError):
        return os_error(path, e)
    text = str(e)
    if any(w in text for w in _DISK_WORDS):
        return os_error(path, OSError(errno.ENOSPC, text))
    return None


def write_file(path, write: Callable[[Path], None], verify: Callable[[Path], int] | None = None) -> Path:
    """Write `path` whole or not at all (module doc). `verify(tmp)` re-reads the written file and returns the
    size it should have; a different size on disk is a one-line "short write" error."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        write(tmp)
        _fsync_file(tmp)
        if verify is not None:
            want, got = verify(tmp), os.stat(tmp).st_size
            if want != got:
                raise SteerscaleError(f"{path}: short write ({got} of {want} bytes reached the disk: disk full or "
                                      f"file size limit); nothing was written under the final name")
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        err = _as_error(path, e) if isinstance(e, Exception) else None
        if err is not None and err is not e:
            raise err from None
        raise
    _fsync_dir(path.parent if str(path.parent) else Path("."))
    return path


# ----------------------------------------------------------------------------- folders

_NEW, _OLD = "steerscale-new", "steerscale-old"


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def clean_leftovers(target: Path) -> None:
    """Remove temporary folders beside `target` left by killed runs on this host (their process is gone)."""
    parent, host = target.parent, host_name()
    for p in parent.glob(f".{target.name}.steerscale-*"):
        parts = p.name[len(target.name) + 2:].split(".")  # kind, host, pid, random
        if len(parts) == 4 and parts[0] in (_NEW, _OLD) and parts[1] == host and parts[2].isdigit() \
                and not _pid_alive(int(parts[2])):
            shutil.rmtree(p, ignore_errors=True)


def _within(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def check_out_folder_target(target, force: bool, sources=(), flag: str = "--out") -> Path:
    """Refuse a target folder that is (inside) a source, or a non-empty folder without `force`."""
    target = check_output_folder(target, flag)
    r = target.resolve()
    for s in sources:
        if s is None or not Path(s).exists():
            continue
        s = Path(s).resolve()
        if _within(r, s) or _within(s, r):
            raise SteerscaleError(f"{flag} {target}: is the source model folder {s} (or inside it, or holds it); "
                                  f"write the edited model to a new folder")
    if r.is_dir() and any(r.iterdir()) and not force:
        raise SteerscaleError(f"{flag} {target}: folder exists and is not empty; pass --force to replace it "
                              f"(atomically: the old folder stays intact until the new one is complete)")
    check_writable_folder(r.parent)
    return target


def build_folder(target, build: Callable[[Path], None], force: bool = False, sources=(), flag: str = "--out") -> Path:
    """Build a folder under a temporary name beside `target` and put it in place whole (module doc)."""
    target = check_out_folder_target(target, force, sources, flag).resolve()
    clean_leftovers(target)
    tag = f"{host_name()}.{os.getpid()}.{os.urandom(4).hex()}"
    tmp = target.with_name(f".{target.name}.{_NEW}.{tag}")
    try:
        tmp.mkdir()
        build(tmp)
        for f in tmp.rglob("*"):
            if f.is_file():
                _fsync_file(f)
        _fsync_dir(tmp)
        fault_point("folder-built")
        if target.is_dir() and any(target.iterdir()):
            if _exchange(tmp, target):  # tmp now holds the old folder
                fault_point("folder-exchanged")
                shutil.rmtree(tmp, ignore_errors=True)
            else:  # no atomic exchange on this system: old moved aside, then the new one in
                old = target.with_name(f".{target.name}.{_OLD}.{tag}")
                os.rename(target, old)
                os.rename(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)  # a missing or empty target
        _fsync_dir(target.parent)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        err = _as_error(target, e) if isinstance(e, Exception) else None
        if err is not None and err is not e:
            raise err from None
        raise
    return target
