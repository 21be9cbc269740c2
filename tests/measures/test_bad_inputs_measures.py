"""Bad inputs measures/ refuses, and the judge's HTTP client: bounded, no redirects.

The catalogue's cases are those whose error this stage's code raises (the innermost steerscale frame); each exits 2
with one line naming the file/field/value, and each has a row in docs/errors.md naming this file. The shared inputs
and builders are in tests/badinput.py.
"""

from __future__ import annotations

import json

import pytest

from badinput import base, catalogue_tests  # noqa: F401 (base: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


# (id, build(ctx) -> argv, expected fragment of the one-line message)
CATALOGUE = [
    ("judge-url-not-http", lambda c: c.openended("--judge-url", "file:///etc/passwd"),
     "judge url 'file:///etc/passwd': expected http:// or https://"),
]


test_catalogue, test_catalogue_is_documented = catalogue_tests(CATALOGUE, __file__)


@pytest.fixture
def http_servers():
    import http.server
    import threading
    import time

    servers, hits = [], []

    class H(http.server.BaseHTTPRequestHandler):
        mode = "ok"
        target = ""

        def log_message(self, *a):
            pass

        def do_GET(self):
            hits.append((self.mode, "GET", self.headers.get("Authorization")))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(json.dumps({"choices": [{"message": {"content": "YES"}}]}).encode())

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hits.append((self.mode, "POST", self.headers.get("Authorization")))
            t_end = time.monotonic() + 8  # every loop below is bounded
            try:
                if self.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", self.target)
                    self.end_headers()
                elif self.mode == "404":
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(b"no such route")
                elif self.mode == "drip":
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    while time.monotonic() < t_end:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.1)
                elif self.mode == "drip-headers":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    while time.monotonic() < t_end:
                        self.wfile.write(b"X: y\r\n")
                        self.wfile.flush()
                        time.sleep(0.1)
                elif self.mode == "endless":
                    self.send_response(200)
                    self.end_headers()
                    chunk = b"x" * 65536
                    while time.monotonic() < t_end:
                        self.wfile.write(chunk)
                else:
                    body = json.dumps({"choices": [{"message": {"content": "NO"}}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
            except OSError:
                pass  # the client hung up: expected

    def start(mode, target=""):
        handler = type("H2", (H,), {"mode": mode, "target": target})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start, hits
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize("mode,fragment", [
    ("drip", "no answer within 1 s (the whole call, reply included)"),
    ("drip-headers", "no answer within 1 s"),
    ("endless", "reply longer than the limit of 100000 bytes"),
    ("404", "HTTP 404"),
])
def test_judge_call_is_bounded(http_servers, mode, fragment):
    import time

    from steerscale.errors import SteerscaleError
    from steerscale.measures.judges import HTTPJudge

    start, _ = http_servers
    judge = HTTPJudge(start(mode), api_key="secret", timeout=1.0, max_bytes=100_000)
    t0 = time.monotonic()
    with pytest.raises(SteerscaleError, match=re_escape(fragment)):
        judge(["p"], ["r"])
    assert time.monotonic() - t0 < 3.0


def re_escape(s):
    import re

    return re.escape(s)


def test_judge_redirect_is_not_followed_and_key_never_resent(http_servers):
    from steerscale.errors import SteerscaleError
    from steerscale.measures.judges import HTTPJudge

    start, hits = http_servers
    other = start("elsewhere")
    judge = HTTPJudge(start("redirect", target=other + "/steal"), api_key="secret", timeout=2.0)
    with pytest.raises(SteerscaleError, match="HTTP 302 redirect to .*/steal; redirects are not followed"):
        judge(["p"], ["r"])
    assert [h for h in hits if h[0] == "elsewhere"] == []  # nothing reached the other host
    ok = HTTPJudge(start("ok"), api_key="secret", timeout=2.0)
    assert ok(["p"], ["r"]) == [0.0] and hits[-1] == ("ok", "POST", "Bearer secret")
