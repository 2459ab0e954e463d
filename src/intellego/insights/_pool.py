"""The transport under the explorer's server: a bounded worker pool with a whole-request deadline, and the
limits checked on raw request bytes (JSON nesting depth without recursion).

Example:
    >>> json_depth(b'[[1], {"a": "]]"}]')
    2
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

__all__ = ["PooledServer", "answer_now", "json_depth"]


class PooledServer(HTTPServer):
    """``HTTPServer`` with a bounded pool of worker threads, a bounded queue and a whole-request deadline.

    The standard ``ThreadingHTTPServer`` starts one thread per connection, without bound, and its socket
    timeout applies to each read, so a client sending one byte at a time keeps a thread for ever. Here a
    watchdog thread closes every connection whose current request passes its deadline.
    """

    request_queue_size = 128  # the listen backlog: browsers and tests open many connections at once
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_workers: int,
                 request_timeout: float) -> None:
        super().__init__(address, handler)
        self.max_workers, self.request_timeout = max_workers, request_timeout
        self._queue: queue.Queue[tuple[Any, Any] | None] = queue.Queue(maxsize=4 * max_workers)
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._deadlines: dict[Any, tuple[float, Any]] = {}
        self._watchdog: threading.Thread | None = None
        self._closed = threading.Event()

    # -------------------------------------------------------------- the pool
    def process_request(self, request: Any, client_address: Any) -> None:
        self.watch(request, None)
        try:
            self._queue.put_nowait((request, client_address))
        except queue.Full:
            self.unwatch(request)
            answer_now(request, HTTPStatus.SERVICE_UNAVAILABLE, "the server is busy; try again shortly")
            self.shutdown_request(request)
            return
        with self._lock:
            if self._idle == 0 and len(self._workers) < self.max_workers:
                worker = threading.Thread(target=self._work, name=f"intellego-http-{len(self._workers)}",
                                          daemon=True)
                self._workers.append(worker)
                self._idle += 1
                worker.start()
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch_loop, name="intellego-http-watchdog",
                                                  daemon=True)
                self._watchdog.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            with self._lock:
                self._idle -= 1
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:  # noqa: BLE001 - a broken connection must not end the worker
                self.handle_error(request, client_address)
            finally:
                self.unwatch(request)
                self.shutdown_request(request)
                with self._lock:
                    self._idle += 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        if getattr(self, "app", None) is not None and self.app.debug:  # type: ignore[attr-defined]
            super().handle_error(request, client_address)

    def server_close(self) -> None:
        super().server_close()
        self._closed.set()
        with self._lock:
            workers = list(self._workers)
        for _ in workers:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break

    # -------------------------------------------------------------- the deadline
    def watch(self, request: Any, handler: Any) -> None:
        """(Re)start the deadline of ``request``'s connection: now plus ``request_timeout``. ``handler`` (or
        None before one exists) tells, by its ``answered`` flag, whether a timeout answer may still be sent."""
        with self._lock:
            self._deadlines[request] = (time.monotonic() + self.request_timeout, handler)

    def unwatch(self, request: Any) -> None:
        with self._lock:
            self._deadlines.pop(request, None)

    def _watch_loop(self) -> None:
        while not self._closed.wait(min(0.05, self.request_timeout / 4)):
            now = time.monotonic()
            with self._lock:
                late = [(r, h) for r, (deadline, h) in self._deadlines.items() if deadline <= now]
                for r, _ in late:
                    del self._deadlines[r]
            for request, handler in late:
                if handler is None or not handler.answered:
                    answer_now(request, HTTPStatus.REQUEST_TIMEOUT,
                                f"the request took longer than {self.request_timeout:g} s")
                with contextlib.suppress(OSError):
                    request.shutdown(socket.SHUT_RDWR)  # wakes the worker blocked on this connection


def answer_now(request: Any, status: HTTPStatus, message: str) -> None:
    """A best-effort short JSON answer written without blocking (the connection is closed next)."""
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with contextlib.suppress(OSError):
        request.send(head + body, socket.MSG_DONTWAIT)


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (strings skipped), without recursion.

    Example:
        >>> json_depth(b'{"a": [1, [2, "[[["]]}')
        3
    """
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        depth += 1 if m.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    return deepest
