"""Connecting the driver to Ray: ``--address`` checked before anything starts, and the real cause of a failure.

``check_address`` refuses, with one line each, what cannot be a Ray address (an http URL, text that is not
HOST:PORT) and a ``ray://`` address when Ray Client (``ray[client]``: grpcio) is not installed.
``connect`` calls ``ray.init`` and turns its errors into one line; ``auth_hint`` names the token-authentication
trap of Ray >= 2.59: a new local ``ray.init()`` (as the Ray tests run) writes ``~/.ray/auth_token`` and turns
token authentication on, and from then on this user's drivers send that token to every cluster they join,
which a cluster started without it (or with another token) refuses.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from ...errors import SteerscaleError

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})$")


def _client_installed() -> bool:
    return importlib.util.find_spec("grpc") is not None


def check_address(address: str | None) -> str | None:
    """The address as ray.init takes it, or a one-line SteerscaleError saying what was expected."""
    if address is None:
        return None
    a = str(address).strip()
    shown = a[:120]
    expected = "expected auto, HOST:PORT (the head node's GCS, port 6379 by default) or ray://HOST:10001 (Ray Client)"
    if a in ("auto", "local"):
        return a
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", a) and not a.startswith("ray://"):
        raise SteerscaleError(f"--address {shown!r}: a {a.split('://')[0]} URL is not a Ray cluster address (the "
                              f"dashboard or job-submission URL cannot run actors); {expected}")
    if a.startswith("ray://"):
        if not _HOST_PORT.match(a[len("ray://"):]) or int(a.rsplit(":", 1)[1]) > 65535:
            raise SteerscaleError(f"--address {shown!r}: not an address; {expected}")
        if not _client_installed():
            raise SteerscaleError(f"--address {shown!r}: ray:// addresses need Ray Client, which is not installed: "
                                  f"pip install 'steerscale[ray]' (it includes ray[client]), or give HOST:6379 or auto "
                                  f"when this machine is a node of the cluster")
        return a
    m = _HOST_PORT.match(a)
    if not m or not 0 < int(m[2]) <= 65535:
        raise SteerscaleError(f"--address {shown!r}: not an address; {expected}")
    return a


def token_file() -> Path:
    return Path.home() / ".ray" / "auth_token"


def auth_hint(address: str | None) -> str:
    """A sentence naming the token-auth trap when it may be the cause (joining a running cluster with a
    token file present and RAY_AUTH_MODE unset), else ''."""
    if address is None or os.environ.get("RAY_AUTH_MODE") is not None:
        return ""
    if not (token_file().is_file() or os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        return ""
    return (f"; {token_file()} exists (Ray >= 2.59 writes it on a new local ray.init()), so this driver joins with "
            f"token authentication, which a cluster started without it or with another token refuses: set "
            f"RAY_AUTH_MODE=disabled when the cluster has no token auth, or put the cluster's token in {token_file()}")


def _is_auth_error(ray, e: BaseException) -> bool:
    auth_cls = getattr(ray.exceptions, "AuthenticationError", None)
    if auth_cls is not None and isinstance(e, auth_cls):
        return True
    text = str(e).lower()
    return "unauthenticated" in text or "authentication" in text or "auth token" in text


def connect(ray, address: str | None) -> None:
    """``ray.init`` (unless this process already joined a cluster), with one-line errors naming the cause."""
    if ray.is_initialized():
        return
    address = check_address(address)
    # None: a new local cluster of its own ("local"), never a cluster a `ray start` on this machine left
    # behind (Ray's own default joins that one); RAY_ADDRESS, when set, is Ray's to read.
    target = address if address is not None or os.environ.get("RAY_ADDRESS") else "local"
    try:
        ray.init(address=target, log_to_driver=False)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError, grpc errors, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        where = f"the Ray cluster at {address}" if address else "a new local Ray cluster"
        if _is_auth_error(ray, e):
            hint = auth_hint(address or "auto") or (f"; set RAY_AUTH_MODE=disabled when the cluster has no token "
                                                    f"auth, or put the cluster's token in {token_file()}")
            raise SteerscaleError(f"could not join {where}: token authentication failed ({first}){hint}") from None
        raise SteerscaleError(f"could not join {where}: {type(e).__name__}: {first}"
                              f"{auth_hint(address) or ''} (is the cluster running? 'ray status' on the head node)") from None
