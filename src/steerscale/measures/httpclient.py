"""One bounded HTTP POST for the judge endpoint (standard library only).

Contract of `post_json(url, payload, headers, timeout, max_bytes)`:

* **Time**: the whole call (connect, send, status line, headers, body) ends within `timeout`
  seconds. A watchdog shuts the socket down at the deadline, so a server that drips one byte a
  second cannot stretch the call (a per-read timeout would let it).
* **Size**: at most `max_bytes` of body are read (a Content-Length above it is refused before
  reading); a reply that never ends fails at the limit instead of filling memory.
* **No redirects**: a 3xx answer is an error naming the Location; the request (and its
  ``Authorization`` header) is never re-sent anywhere.
* **Status**: anything but 2xx is an error with the first 200 bytes of the body.

Every failure raises SteerscaleError naming the endpoint.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse

from ..errors import SteerscaleError

DEFAULT_MAX_BYTES = 1_000_000


def post_json(url: str, payload: dict, headers: dict | None = None, timeout: float = 30.0,
              max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """POST `payload` as JSON to `url`; the 2xx reply body (bytes). See the module doc for the bounds."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise SteerscaleError(f"judge url {url!r}: expected http:// or https:// and a host")
    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    body = json.dumps(payload).encode()
    hdrs = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    conn = cls(u.hostname, u.port, timeout=timeout)
    expired = threading.Event()

    def watchdog():
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, watchdog)
    timer.daemon = True
    deadline = time.monotonic() + timeout
    timer.start()
    late = SteerscaleError(f"judge endpoint {url}: no answer within {timeout:g} s (the whole call, reply included)")
    try:
        conn.request("POST", path, body, hdrs)
        resp = conn.getresponse()
        if 300 <= resp.status < 400:
            where = resp.getheader("Location", "?")
            raise SteerscaleError(f"judge endpoint {url}: HTTP {resp.status} redirect to {where[:200]}; redirects "
                                  f"are not followed (the API key is never re-sent): give the final URL")
        if not 200 <= resp.status < 300:
            snippet = resp.read(200).decode("utf-8", "replace").strip()
            raise SteerscaleError(f"judge endpoint {url}: HTTP {resp.status} {resp.reason}"
                                  + (f" ({snippet})" if snippet else ""))
        length = resp.getheader("Content-Length")
        if length and length.strip().isdigit() and int(length) > max_bytes:
            raise SteerscaleError(f"judge endpoint {url}: reply of {int(length)} bytes is over the limit of "
                                  f"{max_bytes} bytes")
        chunks, n = [], 0
        while True:
            if time.monotonic() > deadline:
                raise late
            chunk = resp.read1(65536)
            if not chunk:
                break
            n += len(chunk)
            if n > max_bytes:
                raise SteerscaleError(f"judge endpoint {url}: reply longer than the limit of {max_bytes} bytes")
            chunks.append(chunk)
        if expired.is_set():  # the watchdog cut the body short: never use a truncated reply
            raise late
        return b"".join(chunks)
    except SteerscaleError:
        if expired.is_set():
            raise late from None
        raise
    except (OSError, http.client.HTTPException) as e:
        if expired.is_set() or isinstance(e, (TimeoutError, socket.timeout)):
            raise late from None
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise SteerscaleError(f"judge endpoint {url}: cannot connect ({reason})") from None
    finally:
        timer.cancel()
        conn.close()
