"""Refusing hostile input: what may be read, where may be written, and escaping for each output format.

Contracts (each failure is a one-line SteerscaleError naming the path or value):

* **Inputs are regular files of bounded size.** `check_input_file` refuses a missing path, a
  directory, a FIFO, a device, a socket, a symbolic-link loop and an unreadable file, each with
  its own message, and a file larger than the input limit (default 256 MB; raise it with the
  environment variable ``STEERSCALE_MAX_INPUT_MB``). `read_input_bytes` never reads more than
  the limit plus one byte, so a file that grows (or a /proc file that reports size 0) cannot
  exhaust memory. Nothing blocks: the type is checked with ``stat`` before the file is opened.
* **Outputs are regular files inside sensible folders.** `check_output_file` refuses an
  existing directory, device, FIFO or socket as an output file (so ``--out /dev/null`` never
  replaces the device); `check_output_folder` refuses the filesystem root, system folders
  (/dev, /proc, /sys, /etc, /bin, /usr, ...) and the home folder itself.
* **JSON** is parsed by `loads_json`, which turns nesting too deep for the parser and integers
  too long to convert into one-line errors instead of RecursionError / ValueError.
* **Escaping**: `csv_cell` defuses spreadsheet formulas in string cells (a leading = + - @ tab or
  CR gets a leading apostrophe, NUL becomes the two characters backslash-0; strings that are plain
  numbers such as "-0.5" are left alone, and non-strings are never touched); `md_text` escapes raw
  HTML in Markdown text.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path

from ..errors import SteerscaleError


MAX_INPUT_ENV = "STEERSCALE_MAX_INPUT_MB"
DEFAULT_MAX_INPUT_MB = 256
MAX_LAYERS = 10_000  # no model has more decoder layers; bounds --layers before a model is loaded
MAX_MESSAGE = 1000  # characters of a user value quoted in an error message


def short(value, limit: int = 120) -> str:
    """repr(value), cut to `limit` characters with a note of how much was left out."""
    r = repr(value)
    return r if len(r) <= limit else f"{r[:limit]}... ({len(r) - limit} more characters)"


def max_input_bytes() -> int:
    raw = os.environ.get(MAX_INPUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_INPUT_MB * 1024 * 1024
    try:
        mb = float(raw)
        if not mb > 0 or mb != mb or mb == float("inf"):
            raise ValueError
    except ValueError:
        raise SteerscaleError(f"{MAX_INPUT_ENV}={short(raw)}: expected a positive number of megabytes") from None
    return int(mb * 1024 * 1024)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _open_fd(path: Path) -> int:
    """Open for reading without blocking on FIFOs (tests simulate permission errors here)."""
    return os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))


def check_input_file(path, expected: str = "a file") -> Path:
    """`path` if it is a readable regular file within the input size limit; else a one-line error."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            raise SteerscaleError(f"{p}: broken symbolic link (points to {os.readlink(p)!r}, which does not exist)") \
                from None
        raise SteerscaleError(f"{p}: no such file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SteerscaleError(f"{p}: symbolic link loop; expected {expected}") from None
        if e.errno == errno.ENOTDIR:
            raise SteerscaleError(f"{p}: no such file (a parent of it is a file, not a folder)") from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise SteerscaleError(f"{p}: cannot read: permission denied") from None
        if e.errno == errno.ENAMETOOLONG:
            raise SteerscaleError(f"{short(str(p))}: file name too long") from None
        raise SteerscaleError(f"{p}: cannot read ({e.strerror or type(e).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise SteerscaleError(f"{p}: is a directory, expected {expected}")
    if not stat.S_ISREG(st.st_mode):
        raise SteerscaleError(f"{p}: is {_kind(st.st_mode)}, not a regular file; expected {expected}")
    limit = max_input_bytes()
    if st.st_size > limit:
        raise _too_large(p, st.st_size, limit)
    try:
        os.close(_open_fd(p))
    except PermissionError:
        raise SteerscaleError(f"{p}: cannot read: permission denied") from None
    except OSError as e:
        raise SteerscaleError(f"{p}: cannot read ({e.strerror or type(e).__name__})") from None
    return p


def _size(n: int) -> str:
    return f"{n} bytes" if n < 2**20 else f"{n / 2**20:.1f} MB"


def _too_large(p: Path, size: int | None, limit: int) -> SteerscaleError:
    got = _size(size) if size is not None else "more"
    return SteerscaleError(f"{p}: {got} is over the input limit of {_size(limit)}; raise it with "
                           f"{MAX_INPUT_ENV}=<megabytes> if the file is really meant to be this large")


def read_input_bytes(path, expected: str = "a file") -> bytes:
    """The bytes of a regular input file, never more than the input limit (see `check_input_file`)."""
    p = check_input_file(path, expected)
    limit = max_input_bytes()
    try:
        with open(p, "rb") as f:
            data = f.read(limit + 1)
    except PermissionError:
        raise SteerscaleError(f"{p}: cannot read: permission denied") from None
    except OSError as e:
        raise SteerscaleError(f"{p}: cannot read ({e.strerror or type(e).__name__})") from None
    if len(data) > limit:
        raise _too_large(p, None, limit)
    return data


def loads_json(text: str, where) -> object:
    """json.loads with one-line errors for nesting too deep and integers too long (JSON syntax errors
    are left to the caller, which knows how to say where they are)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise SteerscaleError(f"{where}: JSON nested too deeply to read; expected a list of flat records") from None
    except json.JSONDecodeError:
        raise
    except ValueError as e:  # e.g. an integer with more than 4300 digits
        msg = str(e).split(":")[0][:120]
        raise SteerscaleError(f"{where}: unreadable JSON value ({msg})") from None


# ----------------------------------------------------------------------------- outputs

_SYSTEM_FOLDERS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr",
                   "/var")
# nothing is written below these either (/var and /run are not here: /var/tmp, /run/media hold real work)
_NEVER_UNDER = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sbin", "/sys", "/usr")


def check_output_folder(folder, flag: str = "--out") -> Path:
    """Refuse folders no run should write into: the root, system folders, the home folder itself."""
    p = Path(folder).expanduser()
    r = p.resolve()
    if r == Path(r.anchor):
        raise SteerscaleError(f"{flag} {folder}: the filesystem root; give a folder of its own, e.g. results/run1")
    if str(r) in _SYSTEM_FOLDERS or any(str(r).startswith(d + os.sep) for d in _NEVER_UNDER):
        raise SteerscaleError(f"{flag} {folder}: a system folder ({r}); give a folder of its own, e.g. results/run1")
    if r == Path.home().resolve():
        raise SteerscaleError(f"{flag} {folder}: your home folder itself; give a folder of its own, e.g. "
                              f"~/results/run1")
    if r.exists() and not r.is_dir():
        what = "a file" if r.is_file() else _kind(r.stat().st_mode)
        raise SteerscaleError(f"{flag} {folder}: is {what}, not a folder")
    return p


def check_output_file(path, flag: str = "--out", expected: str = "a file name") -> Path:
    """Refuse an output path that exists and is not a regular file (a device, FIFO, socket or directory),
    and one whose folder is refused by `check_output_folder`."""
    p = Path(path).expanduser()
    if not p.name or p.name in (".", ".."):
        raise SteerscaleError(f"{flag} {path}: is a folder; expected {expected}")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SteerscaleError(f"{flag} {path}: symbolic link loop; expected {expected}") from None
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise SteerscaleError(f"{flag} {path}: is {_kind(st.st_mode)}; steerscale writes only regular files "
                              f"(expected {expected})")
    check_output_folder(p.parent if str(p.parent) else Path("."), flag=f"{flag} folder")
    return p


# ----------------------------------------------------------------------------- escaping


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def csv_cell(v):
    """A CSV cell safe to open in a spreadsheet: only strings change (see the module doc)."""
    if not isinstance(v, str) or not v:
        return v
    if "\x00" in v:
        v = v.replace("\x00", "\\0")
    if v[0] in "=+-@\t\r" and not _is_number(v):
        v = "'" + v
    return v


# bidirectional controls (LRE..RLO, LRI..PDI, LRM/RLM): they can make text display in another order than it reads
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MD_LINK = re.compile(r"(?<!\\)\](?=\s*[(\[:])")  # a "]" that would close a link's text: [t](url), [t][r], [t]:


def no_bidi(x) -> str:
    """`x` as text with bidirectional control characters shown as their code points (e.g. "U+202E")."""
    return _BIDI.sub(lambda m: f"U+{ord(m.group()):04X}", str(x))


def md_text(x) -> str:
    """Text for Markdown with raw HTML neutralised (<, >, & become entities), links neutralised (a "]" before
    "(", "[" or ":" is escaped, so ``[text](javascript:...)`` shows as text), bidi controls shown as code
    points, and kept on one line."""
    s = no_bidi(x).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_LINK.sub(r"\\]", s)
    return s.replace("\r", " ").replace("\n", " ")
