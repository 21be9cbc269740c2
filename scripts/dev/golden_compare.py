"""Compare two `steerscale reproduce` folders made by the same config on two commits: the behaviour check of a
refactoring (tables byte-identical; everything else identical up to what is volatile by nature).

    python scripts/dev/golden_compare.py BEFORE AFTER

Every file is compared byte for byte. A file that differs is accepted only when its difference is volatile:
- JSON (manifests, summaries): values under timing keys (``timings_s``, ``seconds``, ``cpu_s``, ``created_unix``),
  ``git_revision``, ``command`` (the argv: how and from which tree the run was invoked), and strings holding the
  output folder's own path (``folder``, ``source``, ``vectors_file``, ...);
- SVG figures: matplotlib's ``<dc:date>``, its random clip-path and marker ids, and the encoding of embedded PNGs
  (compared by their decoded pixels);
- report.md / report.html: the output folder's path and "took N s" durations; in report.html also the timings,
  revision and command of the manifests it embeds and the seconds column of its runs table;
- lock files (they hold a pid and a host).
Anything else that differs, and every CSV / safetensors file that differs at all, is listed as a failure; the
exit status is 1 when there is any.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import sys
from pathlib import Path

VOLATILE_KEYS = {"timings_s", "seconds", "cpu_s", "created_unix", "git_revision", "sweep_timings_s",
                 "command"}  # the argv: how the run was invoked, from which tree, into which folder
# the keys inside timings_s blocks, for report.html, which embeds manifests as text
TIMING_NAMES = {"total", "engine_prepare", "baseline", "total_with_training", "ce", "generate", "logodds"}


def json_diffs(x, y, path=()):
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y)):
            if k not in x or k not in y:
                yield path + (k,), "key only on one side"
            else:
                yield from json_diffs(x[k], y[k], path + (k,))
    elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for i, (u, v) in enumerate(zip(x, y)):
            yield from json_diffs(u, v, path + (i,))
    elif x != y:
        yield path, f"{str(x)[:50]!r} -> {str(y)[:50]!r}"


def volatile_json(path, x, y, a: Path, b: Path) -> bool:
    if any(k in VOLATILE_KEYS for k in path if isinstance(k, str)):
        return True
    return isinstance(x, str) and isinstance(y, str) and x.replace(str(a), "@") == y.replace(str(b), "@")


def get(doc, path):
    for k in path:
        doc = doc[k]
    return doc


def pixels(b64: str) -> str:
    """An embedded PNG by its decoded pixels (the same pixels may be encoded to different bytes)."""
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(re.sub(r"\s", "", b64))))
    return hashlib.sha256(img.mode.encode() + repr(img.size).encode() + img.tobytes()).hexdigest()


def normalise_text(text: str, root: Path, suffix: str) -> str:
    text = text.replace(str(root), "@")
    if suffix == ".svg":
        text = re.sub(r"<dc:date>[^<]*</dc:date>", "", text)
        ids: dict[str, str] = {}
        text = re.sub(r"\b([A-Za-z0-9_]*?)([0-9a-f]{10})\b", lambda m: ids.setdefault(m.group(0), f"id{len(ids)}"), text)
        text = re.sub(r'data:image/png;base64,([^"]+)"', lambda m: f'png:{pixels(m.group(1))}"', text)
    if suffix in (".md", ".html"):
        text = re.sub(r"(took |\()\d+(\.\d+)? s\b", r"\1N s", text)
    if suffix == ".html":  # the manifests it embeds, and the seconds column of its runs table
        keys = "|".join(sorted(VOLATILE_KEYS | TIMING_NAMES))
        text = re.sub(rf"(&quot;(?:{keys})&quot;: )(&quot;[^&]*&quot;|[-\d.e]+)", r"\1N", text)
        text = re.sub(r"(&quot;command&quot;: \[)[^\]]*(\])", r"\1N\2", text)
        text = re.sub(r'(<td class="num">[0-9a-f]{16}</td><td class="num">)[\d.]+(</td>)', r"\1N\2", text)
    return text


def main(a: Path, b: Path) -> int:
    fa = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    bad = [f"only in {a}: {r}" for r in sorted(fa - fb)] + [f"only in {b}: {r}" for r in sorted(fb - fa)]
    kinds: dict[str, list[int]] = {}
    for r in sorted(fa & fb):
        tally = kinds.setdefault(r.suffix or r.name, [0, 0, 0])
        x, y = (a / r).read_bytes(), (b / r).read_bytes()
        if x == y:
            tally[0] += 1
            continue
        if r.suffix == ".lock":
            tally[1] += 1
            continue
        if r.suffix == ".json":
            dx, dy = json.loads(x), json.loads(y)
            real = [(p, d) for p, d in json_diffs(dx, dy)
                    if d == "key only on one side" or not volatile_json(p, get(dx, p), get(dy, p), a, b)]
            if not real:
                tally[1] += 1
                continue
            bad += [f"{r}: {'/'.join(map(str, p))}: {d}" for p, d in real[:10]]
        elif r.suffix in (".svg", ".md", ".html") and \
                normalise_text(x.decode(), a, r.suffix) == normalise_text(y.decode(), b, r.suffix):
            tally[1] += 1
            continue
        else:
            bad.append(f"{r}: differs")
        tally[2] += 1
    for kind, (same, vol, diff) in sorted(kinds.items()):
        print(f"{kind:18s} {same:4d} byte-identical  {vol:3d} differ only in volatile fields  {diff:3d} differ")
    for line in bad:
        print("FAIL", line)
    print("golden check:", "identical" if not bad else f"{len(bad)} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
