"""The explorer as a local web app, on the standard library's ``http.server`` (with a bounded worker pool).

Why the standard library: the app is one HTML page, two static files and four small JSON routes for one
local user; a framework would add dependencies and an install step without removing any of the checks
below, which are written out here so they can be read and tested in one place:

* binds ``127.0.0.1`` unless another host is named; a ``Host`` header check stops DNS rebinding;
* a random per-session token: in the page URL (``?token=``) and in the ``X-Intellego-Token`` header of every
  API call; no CORS headers, so other sites cannot read answers, and a cross-site ``Origin`` is refused;
* JSON bodies only (``415`` otherwise), a body size limit (``413``), a nesting limit (``400``), bodies
  shorter than their ``Content-Length`` refused (``400``), and a time limit per attribution job; unknown keys
  and out-of-range values answer ``400`` with the message;
* only origin-form request targets (``/path?query``; absolute URLs and ``*`` answer ``400``);
* a whole-request deadline (``request_timeout``, from the start of a request to its answer, however slowly
  the client sends: a watchdog closes the connection, with ``408`` if nothing was answered yet), a bounded
  pool of worker threads (``max_workers``) with a bounded queue (``503`` when full) and a listen backlog of
  128, so slow or many clients cannot exhaust threads or get connections reset;
* only the package's own ``app.js`` and ``app.css`` are served (no file system paths); no debugger, no
  tracebacks in answers.

Example:
    >>> import json, urllib.request, torch
    >>> from intellego.insights.session import Batch, Session
    >>> from intellego.insights.features import GeneralFeature
    >>> session = Session([torch.nn.Linear(2, 2)], ["a", "b"], [GeneralFeature("x", ["p", "q"])],
    ...                   [Batch(torch.randn(3, 2), torch.tensor([0, 1, 1]))])
    >>> server = InsightsServer(session, port=0).start()
    >>> ask = urllib.request.Request(server.base_url + "/api/config", headers={"X-Intellego-Token": server.token})
    >>> json.load(urllib.request.urlopen(ask))["classes"]
    ['a', 'b']
    >>> server.stop()
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import IntellegoError
from ._pool import PooledServer, json_depth
from .assets import asset
from .session import Busy, Session

__all__ = ["InsightsServer", "ASSETS", "LOOPBACK"]

ASSETS = {"/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/app.css": ("app.css", "text/css; charset=utf-8")}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_HEADER = "X-Intellego-Token"
MAX_JSON_DEPTH = 32

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/app.css"></head>
<body><div id="app"></div>
<script type="module" nonce="{nonce}">
import {{ mount, httpTransport }} from "/static/app.js";
history.replaceState(null, "", location.pathname);
mount(document.getElementById("app"), httpTransport("", {token}));
</script></body></html>
"""


class InsightsServer:
    """Serves one :class:`~intellego.insights.session.Session` over HTTP.

    Args:
        session: The session to explore.
        host: Address to bind; loopback by default. Any other address must be asked for explicitly.
        port: TCP port; ``0`` picks a free one.
        token: The session token; random (32 bytes, URL-safe) when ``None``.
        max_body: Largest accepted request body, in bytes.
        request_timeout: Seconds one request may take, from its first byte (or the end of the previous answer on
            a kept-alive connection) to its answer; slower connections are closed.
        max_workers: Threads answering requests; further connections wait in a queue of ``4 * max_workers``,
            and beyond that get ``503``.
        debug: Log every request to stderr (nothing else changes; there is no debugger).
    """

    def __init__(self, session: Session, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None,
                 max_body: int = 64 * 1024, request_timeout: float = 10.0, max_workers: int = 16,
                 debug: bool = False) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise IntellegoError(f"port must be an integer between 0 and 65535, got {port!r}")
        if not isinstance(host, str) or not host:
            raise IntellegoError(f"host must be a non-empty address string, got {host!r}")
        if not isinstance(request_timeout, (int, float)) or not request_timeout > 0:
            raise IntellegoError(f"request_timeout must be a positive number of seconds, got {request_timeout!r}")
        if not isinstance(max_workers, int) or max_workers < 1:
            raise IntellegoError(f"max_workers must be a positive integer, got {max_workers!r}")
        self.session, self.debug = session, debug
        self.token = token or secrets.token_urlsafe(32)
        self.max_body, self.request_timeout = max_body, float(request_timeout)
        self.httpd = PooledServer((host, port), _Handler, max_workers, float(request_timeout))
        self.httpd.app = self  # type: ignore[attr-defined]
        self.host, self.port = host, int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        shown = f"[{shown}]" if ":" in shown else shown
        return f"http://{shown}:{self.port}"

    @property
    def url(self) -> str:
        """The page's address, with the token."""
        return f"{self.base_url}/?token={self.token}"

    def start(self) -> InsightsServer:
        """Serve on a background (daemon) thread; returns ``self``."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="intellego-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted."""
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()

    def stop(self) -> None:
        """Stop serving and cancel the session's jobs."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.session.cancel_all()

    def allowed_host(self, header: str | None) -> bool:
        if header is None:
            return False
        if self.host not in LOOPBACK:
            return True  # served to the network on request: the token is the guard
        return header in {f"{h}:{self.port}" for h in ("127.0.0.1", "localhost", "[::1]")}

    def token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())


class _Handler(BaseHTTPRequestHandler):
    server_version = "intellego"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    answered = False

    @property
    def app(self) -> InsightsServer:
        return self.server.app  # type: ignore[attr-defined]

    def setup(self) -> None:
        self.timeout = self.server.app.request_timeout  # type: ignore[attr-defined,misc]
        super().setup()

    def handle_one_request(self) -> None:
        """One request under the whole-request deadline (restarted for each request of a kept-alive connection)."""
        self.answered = False
        self.server.watch(self.request, self)  # type: ignore[attr-defined]
        try:
            super().handle_one_request()
        except (TimeoutError, ConnectionError):
            self.close_connection = True

    def parse_request(self) -> bool:
        """The standard checks, then: only origin-form targets (``/path``), never ``http://...``, ``//`` or ``*``."""
        if not super().parse_request():
            return False
        if not self.path.startswith("/") or self.path.startswith("//"):
            self._error(HTTPStatus.BAD_REQUEST, "the request target must be a path starting with '/' (origin form)")
            return False
        return True

    def send_response(self, code: int, message: str | None = None) -> None:
        self.answered = True
        super().send_response(code, message)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.answered = True
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: Any) -> None:
        if self.app.debug:
            super().log_message(format, *args)

    # ------------------------------------------------------------------ answers
    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, allow_nan=False).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        """An error as ``{"error": message}``; the connection closes, as an unread body may follow."""
        self.close_connection = True
        self._send(status, json.dumps({"error": message}).encode(), "application/json", {"Connection": "close"})

    def _guard(self, api: bool) -> bool:
        """Host check for every route, token check for the API; answers and returns False on failure."""
        if not self.app.allowed_host(self.headers.get("Host")):
            self._error(HTTPStatus.FORBIDDEN, "unexpected Host header; open the URL the server printed")
            return False
        if api and not self.app.token_ok(self.headers.get(TOKEN_HEADER)):
            self._error(HTTPStatus.FORBIDDEN, f"missing or wrong {TOKEN_HEADER} header")
            return False
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host')}":
            self._error(HTTPStatus.FORBIDDEN, "cross-origin requests are not allowed")
            return False
        return True

    # ------------------------------------------------------------------ routes
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = urlsplit(self.path)
        path = parts.path
        if path in ASSETS:
            if self._guard(api=False):
                name, kind = ASSETS[path]
                self._send(HTTPStatus.OK, asset(name).encode(), kind)
        elif path == "/":
            if self._guard(api=False):
                self._page(parse_qs(parts.query).get("token", [None])[0])
        elif path == "/api/config":
            if self._guard(api=True):
                self._json(HTTPStatus.OK, self.app.session.config())
        elif path.startswith("/api/jobs/") and path.count("/") == 3:
            if self._guard(api=True):
                job = self.app.session.job(path.rsplit("/", 1)[1])
                if job is None:
                    self._error(HTTPStatus.NOT_FOUND, "no such job (finished jobs are kept for a while only)")
                else:
                    self._json(HTTPStatus.OK, job.snapshot())
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    do_HEAD = do_GET  # noqa: N815

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path == "/api/jobs":
            if self._guard(api=True):
                body = self._body()
                if body is not _NO_BODY:
                    self._submit(body)
        elif path.startswith("/api/jobs/") and path.endswith("/cancel") and path.count("/") == 4:
            if self._guard(api=True):
                job = self.app.session.job(path.split("/")[3])
                if job is None:
                    self._error(HTTPStatus.NOT_FOUND, "no such job")
                else:
                    job.cancel()
                    self._json(HTTPStatus.OK, job.snapshot())
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such route: POST {path}")

    def _refuse(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} is not allowed")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815

    def _page(self, token: str | None) -> None:
        if not self.app.token_ok(token):
            self._send(HTTPStatus.FORBIDDEN, b"Open the URL printed by the server: it carries the session token.",
                       "text/plain; charset=utf-8")
            return
        nonce = secrets.token_urlsafe(16)
        page = _PAGE.format(title=html.escape(self.app.session.title), nonce=nonce,
                            token=json.dumps(self.app.token))
        csp = (f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8", {"Content-Security-Policy": csp})

    def _body(self) -> Any:
        """The parsed JSON body, or ``_NO_BODY`` after answering with the 4xx that explains why not."""
        if self.headers.get("Transfer-Encoding"):
            self._error(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted; send Content-Length")
            return _NO_BODY
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"the body must be application/json, got {kind!r}")
            return _NO_BODY
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._error(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
            return _NO_BODY
        if length < 0 or length > self.app.max_body:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"the body has {length} bytes; the limit is {self.app.max_body}")
            return _NO_BODY
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            self._error(HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive: Content-Length announced {length} "
                        "bytes")
            return _NO_BODY
        if len(raw) < length:
            self._error(HTTPStatus.BAD_REQUEST, f"the body has {len(raw)} bytes but Content-Length announced {length}")
            return _NO_BODY
        depth = json_depth(raw)
        if depth > MAX_JSON_DEPTH:
            self._error(HTTPStatus.BAD_REQUEST, f"the body nests {depth} levels deep; the limit is {MAX_JSON_DEPTH}")
            return _NO_BODY
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {exc}")
            return _NO_BODY

    def _submit(self, body: Any) -> None:
        try:
            job = self.app.session.submit(body)
        except Busy as exc:
            self._error(HTTPStatus.TOO_MANY_REQUESTS, str(exc))
        except IntellegoError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        else:
            self._json(HTTPStatus.ACCEPTED, job.snapshot())


_NO_BODY = object()
