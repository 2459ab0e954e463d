"""Insights server under hostile or heavy use, on loopback only: nested JSON, many parallel requests, slow
senders, short bodies, non-origin request targets. Every case is bounded in time."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest
import torch
from torch import nn

from intellego.errors import IntellegoError
from intellego.insights import Batch, Session
from intellego.insights.features import GeneralFeature
from intellego.insights.server import MAX_JSON_DEPTH, InsightsServer, json_depth

TIMEOUT = 0.5  # the servers' whole-request deadline in these tests
WORKERS = 2


def _session() -> Session:
    torch.manual_seed(0)
    data = [Batch(torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1]))]
    return Session([nn.Linear(3, 2)], ["a", "b"], [GeneralFeature("x", ["u", "v", "w"])], data)


@pytest.fixture(scope="module")
def server():
    srv = InsightsServer(_session(), port=0, request_timeout=TIMEOUT).start()
    yield srv
    srv.stop()


@pytest.fixture
def small_server():
    """A server with two workers (and a queue of eight), for the exhaustion cases."""
    srv = InsightsServer(_session(), port=0, request_timeout=TIMEOUT, max_workers=WORKERS).start()
    yield srv
    srv.stop()


def _raw(srv: InsightsServer, data: bytes, *, shut_write: bool = False, wait: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read the answer until the server closes it."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=wait) as sock:
        sock.sendall(data)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def _post(srv: InsightsServer, body: bytes, length: int | None = None) -> bytes:
    head = (f"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nX-Intellego-Token: {srv.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body) if length is None else length}\r\n\r\n")
    return head.encode() + body


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer[9:12])


def _error(answer: bytes) -> str:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


def _get(srv: InsightsServer, path: str = "/api/config") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{srv.port}", "X-Intellego-Token": srv.token})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_json_depth_counts_nesting_outside_strings():
    assert json_depth(b"{}") == 1 and json_depth(b"3") == 0
    assert json_depth(b'{"a": "[[[[", "b": [[1], {"c": []}]}') == 4
    assert json_depth(b'["\\"[[["]') == 1  # an escaped quote does not end the string


@pytest.mark.parametrize("body, fragment", [
    (b"[" * 50_000, "nests 50000 levels deep; the limit is 32"),  # RecursionError before: no answer at all
    (b'{"a":' * 40 + b"1" + b"}" * 40, "nests 40 levels deep"),
])
def test_deeply_nested_json_is_400(server, body, fragment):
    answer = _raw(server, _post(server, body))
    assert _status(answer) == 400 and fragment in _error(answer)
    assert _get(server) == 200  # and the server keeps working


def test_nesting_at_the_limit_reaches_the_session(server):
    body = json.dumps({"method": "Saliency", "arguments": {"x": _nested(MAX_JSON_DEPTH - 2)}}).encode()
    answer = _raw(server, _post(server, body))
    assert _status(answer) == 400 and "unknown argument" in _error(answer)


def _nested(n: int) -> list:
    value: list = []
    for _ in range(n - 1):
        value = [value]
    return value


def test_a_body_shorter_than_its_content_length_is_400(server):
    body = b'{"method": "Saliency"}'
    answer = _raw(server, _post(server, body, length=len(body) + 20), shut_write=True)
    assert _status(answer) == 400 and f"has {len(body)} bytes but Content-Length announced {len(body) + 20}" in \
        _error(answer)


def test_a_body_that_never_arrives_is_408_within_the_deadline(server):
    body = b'{"method": "Saliency"}'
    t0 = time.monotonic()
    answer = _raw(server, _post(server, body, length=len(body) + 20))
    assert _status(answer) == 408 and time.monotonic() - t0 < TIMEOUT + 2


@pytest.mark.parametrize("target", ["http://127.0.0.1:{port}/api/config", "*", "api/config"])
def test_only_origin_form_targets(server, target):
    target = target.format(port=server.port)
    answer = _raw(server, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                          f"X-Intellego-Token: {server.token}\r\n\r\n".encode())
    assert _status(answer) == 400 and "origin form" in _error(answer)


def test_fifty_parallel_requests_are_all_answered(server):
    assert server.httpd.request_queue_size >= 64
    statuses: list[int] = []
    go = threading.Barrier(50)

    def one() -> None:
        go.wait()
        statuses.append(_get(server))

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [200] * 50


def test_a_slow_sender_is_cut_off_at_the_whole_request_deadline(server):
    """One header byte every 0.1 s: each read is fast, so a per-read timeout never fires; the deadline does."""
    t0 = time.monotonic()
    closed_after = None
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /api/config HTTP/1.1\r\n")
        for byte in b"X-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > TIMEOUT + 3:
                break
        sock.settimeout(2)
        try:
            answer = sock.recv(4096)
        except OSError:
            answer = b""
        closed_after = time.monotonic() - t0
    assert closed_after < TIMEOUT + 3
    assert answer == b"" or _status(answer) == 408


def test_idle_connections_cannot_exhaust_the_workers(small_server):
    """Twelve connections that send nothing: two workers hold two, eight wait in the queue, the rest get 503;
    within the deadline all are closed, worker threads stay bounded, and the next request is answered."""
    socks = [socket.create_connection(("127.0.0.1", small_server.port), timeout=5) for _ in range(12)]
    try:
        time.sleep(0.2)
        workers = small_server.httpd._workers
        assert 0 < len(workers) <= WORKERS and all(t.is_alive() for t in workers)
        answers = []
        for sock in socks:
            sock.settimeout(TIMEOUT * 4 * 3 + 3)
            try:
                answers.append(sock.recv(4096))
            except OSError:
                answers.append(b"")
        statuses = sorted(_status(a) for a in answers if a)
        assert set(statuses) <= {408, 503} and statuses.count(503) >= 2
    finally:
        for sock in socks:
            sock.close()
    assert _get(small_server) == 200


def test_server_limits_are_checked():
    with pytest.raises(IntellegoError, match="max_workers must be a positive integer, got 0"):
        InsightsServer(_session(), port=0, max_workers=0)
    with pytest.raises(IntellegoError, match="request_timeout must be a positive number of seconds, got -1"):
        InsightsServer(_session(), port=0, request_timeout=-1)
