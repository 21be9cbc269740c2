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
import logging
import os
import re
import stat
from pathlib import Path

from ..errors import SteerscaleError

log = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------- model checks


def model_context(model) -> int | None:
    """The longest sequence the model's positions allow (max_position_embeddings / n_positions), or None."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for k in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        v = getattr(cfg, k, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def check_context(model, tokenizer, texts, template: str, system: str | None, extra: int = 1,
                  what: str = "item", max_tokens: int | None = None, raw: bool = False,
                  extra_what: str = "to generate") -> None:
    """Refuse a prompt whose tokens plus `extra` (the answer token, or the tokens to generate) exceed the
    model's context. `texts`: (label, text) pairs; `raw`: tokenise the text as is (no prompt template);
    `max_tokens`: texts are cut to this many tokens by the caller."""
    ctx = model_context(model)
    if ctx is None:
        return
    from ..core.prompts import _encode, format_prompt

    for label, text in texts:
        n = len(_encode(tokenizer, text if raw else format_prompt(tokenizer, text, template, system)))
        if max_tokens is not None:
            n = min(n, max_tokens)
        if n + extra > ctx:
            more = f" + {extra} {extra_what}" if extra > 1 else ""
            where = f"{what} {label}" if str(label) != "" else what
            raise SteerscaleError(f"{where}: {n} prompt tokens{more} exceed this model's context of {ctx} "
                                  f"tokens; shorten it or use a model with a longer context")


def check_reproduce_fits(cfg, m, model, tok, ab_data, oe_data) -> None:
    """Every A/B item, and every prompt the open-ended sweep scores or generates for (plus max_new_tokens), must
    fit the model's context: the same checks as the CLI's sweep and openended (guards.check_context)."""
    tmpl, system = m.sweep["template"], m.sweep["system"]
    for name, items in zip(("train", "test"), ab_data or ()):
        check_context(model, tok, [(it.id, it.question) for it in items], tmpl, system, extra=2,
                      what=f"{cfg.data[name]}: item", extra_what="for '(' and the answer letter")
    if oe_data is not None:
        o = cfg.openended
        for source, prompts in ((o["harmful"], oe_data[0]), (o["harmless"], oe_data[1])):
            check_context(model, tok, [(p.id, p.text) for p in prompts[: o["n_logodds"]]], tmpl, system, extra=1,
                          what=f"{source}: prompt")
            check_context(model, tok, [(p.id, p.text) for p in prompts[: o["n_generate"]]], tmpl, system,
                          extra=o["max_new_tokens"], what=f"{source}: prompt")


def check_model_layers(info) -> None:
    if info.n_layers < 1:
        raise SteerscaleError(f"model {info.spec}: has {info.n_layers} decoder layers; nothing to steer "
                              f"(check num_hidden_layers in its config.json)")


def check_foreign_vectors(vectors, info, allow: bool, flag: str = "--allow-foreign-vectors") -> None:
    """Refuse vectors made on another model (same shape, or check_model would already have refused them),
    unless `allow`. Fingerprints decide first: vectors whose ``weights_fingerprint`` equals the model's were made
    on these weights, whatever name either side records; different fingerprints are another model (or dtype).
    Names are compared only when either side has no fingerprint."""
    meta = getattr(vectors, "meta", None) or {}
    made_on = meta.get("model")
    theirs, ours = meta.get("weights_fingerprint"), getattr(info, "weights_fingerprint", "")
    detail = ""
    if theirs and ours:
        if theirs == ours:
            return
        made_on = made_on or "?"
        detail = (f"; their weights fingerprint is {str(theirs)[:40]}, this model's {ours} (other weights, or these "
                  f"weights in another dtype)")
    elif not made_on or made_on == info.name:
        return
    where = f"{vectors.path}: " if getattr(vectors, "path", None) else ""
    if allow:
        log.warning("%svectors were made on %r; steering %r with them (%s)", where, made_on, info.name, flag)
        return
    raise SteerscaleError(f"{where}vectors were made on model {short(made_on, 80)}, this is {short(info.name, 80)} "
                          f"(same shape){detail}; pass {flag} to steer it with them anyway")


def check_layers_present(vectors, layers, flag: str = "--layers") -> None:
    """Imported vectors (interop) are zero at layers their file does not cover (``meta["layers_present"]``):
    steering there would report a "delta exactly 0" as a measured effect, so such layers are refused."""
    present = (getattr(vectors, "meta", None) or {}).get("layers_present")
    if present is None:
        return
    want = range(vectors.n_layers) if layers is None else layers
    missing = sorted({int(l) for l in want} - {int(l) for l in present})
    if missing:
        where = f"{vectors.path}: " if getattr(vectors, "path", None) else ""
        shown = ", ".join(map(str, missing[:6])) + (" ..." if len(missing) > 6 else "")
        raise SteerscaleError(f"{where}imported vectors cover layers {short(sorted(present), 80)} only; layer(s) "
                              f"{shown} would steer with a zero vector and measure nothing; pass {flag} within "
                              f"the covered layers")


def saturated_points(rows: list[dict]) -> list[tuple]:
    """(layer, multiplier, score) of steered points where every item has exactly the same score while the
    unsteered items differ: the steering swamped the input (a multiplier far too large)."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["layer"], r["multiplier"]), []).append(float(r["score"]))
    out = []
    base_varies = any(len(set(v)) > 1 for (l, m), v in groups.items() if m == 0.0)
    for (l, m), v in sorted(groups.items()):
        if m != 0.0 and len(v) > 1 and len(set(v)) == 1 and base_varies:
            out.append((l, m, v[0]))
    return out
