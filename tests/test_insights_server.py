"""Insights web server: token, bind address, Host/Origin checks, 4xx answers, limits, assets, CLI."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from intellego.errors import IntellegoError
from intellego.insights import Batch, Session
from intellego.insights.__main__ import main
from intellego.insights.features import GeneralFeature
from intellego.insights.server import InsightsServer
from intellego.insights.session import Busy


@pytest.fixture(scope="module")
def server():
    torch.manual_seed(0)
    data = [Batch(torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1]))]
    session = Session([nn.Linear(3, 2)], ["a", "b"], [GeneralFeature("x", ["u", "v", "w"])], data)
    srv = InsightsServer(session, port=0, max_body=2048, request_timeout=0.5).start()
    yield srv
    srv.stop()


def ask(srv, method, path, body=None, headers=None, token=True, raw=None):
    """One request; returns (status, headers, parsed JSON or text)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    all_headers = {"Host": f"127.0.0.1:{srv.port}"}
    if token:
        all_headers["X-Intellego-Token"] = srv.token
    if body is not None:
        raw = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    conn.request(method, path, body=raw, headers=all_headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    kind = response.getheader("Content-Type", "")
    return response.status, response, json.loads(data) if "json" in kind else data.decode()


def test_binds_loopback_by_default_and_other_hosts_only_when_asked(server):
    assert server.httpd.server_address[0] == "127.0.0.1"
    assert server.url.startswith(f"http://127.0.0.1:{server.port}/?token=")
    other = InsightsServer(server.session, host="0.0.0.0", port=0)
    try:
        assert other.httpd.server_address[0] == "0.0.0.0" and other.base_url.startswith("http://127.0.0.1:")
    finally:
        other.httpd.server_close()
    with pytest.raises(IntellegoError, match="port must be an integer between 0 and 65535"):
        InsightsServer(server.session, port=70000)


def test_api_needs_the_token(server):
    assert ask(server, "GET", "/api/config", token=False)[0] == 403
    status, _, body = ask(server, "GET", "/api/config", headers={"X-Intellego-Token": "guess"})
    assert status == 403 and "X-Intellego-Token" in body["error"]
    status, _, body = ask(server, "GET", "/api/config")
    assert status == 200 and body["classes"] == ["a", "b"]
    assert InsightsServer(server.session, port=0).token != server.token  # per session
    assert len(server.token) >= 40


def test_page_needs_the_token_and_sets_a_strict_policy(server):
    status, _, text = ask(server, "GET", "/", token=False)
    assert status == 403 and "token" in text
    status, response, text = ask(server, "GET", f"/?token={server.token}", token=False)
    assert status == 200 and "httpTransport" in text and json.dumps(server.token) in text
    csp = response.getheader("Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'self' 'nonce-" in csp and "unsafe" not in csp
    assert response.getheader("X-Frame-Options") == "DENY"
    assert response.getheader("Access-Control-Allow-Origin") is None
    assert "Python" not in response.getheader("Server")


def test_no_cors_and_no_cross_origin_or_rebound_requests(server):
    status, response, _ = ask(server, "OPTIONS", "/api/jobs", headers={"Origin": "https://evil.example",
                                                                      "Access-Control-Request-Method": "POST"})
    assert status == 405 and response.getheader("Access-Control-Allow-Origin") is None
    status, _, body = ask(server, "POST", "/api/jobs", {"method": "Saliency"}, headers={"Origin": "https://evil.example"})
    assert status == 403 and "cross-origin" in body["error"]
    status, _, body = ask(server, "GET", "/api/config", headers={"Host": f"evil.example:{server.port}"})
    assert status == 403 and "Host" in body["error"]
    status, _, _ = ask(server, "GET", "/api/config", headers={"Host": f"localhost:{server.port}"})
    assert status == 200


def test_only_the_packages_assets_are_served(server):
    status, response, text = ask(server, "GET", "/static/app.js", token=False)
    assert status == 200 and response.getheader("Content-Type").startswith("text/javascript")
    assert "export function mount" in text
    assert ask(server, "GET", "/static/app.css", token=False)[0] == 200
    for path in ["/static/../server.py", "/static/server.py", "/static/%2e%2e/server.py", "/etc/passwd",
                 "/static/", "/favicon.ico", "/api/other"]:
        assert ask(server, "GET", path)[0] == 404, path


@pytest.mark.parametrize("headers, raw, status, fragment", [
    ({"Content-Type": "text/plain"}, b"{}", 415, "application/json"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=1", 415, "application/json"),
    ({"Content-Type": "application/json"}, b"{not json", 400, "not valid JSON"),
    ({"Content-Type": "application/json"}, b"x" * 4096, 413, "limit is 2048"),
    ({"Content-Type": "application/json", "Transfer-Encoding": "chunked"}, b"2\r\n{}\r\n0\r\n\r\n", 411, "chunked"),
])
def test_bodies_must_be_small_json(server, headers, raw, status, fragment):
    got, _, body = ask(server, "POST", "/api/jobs", headers=headers, raw=raw)
    assert got == status and fragment in body["error"]


def test_missing_content_length_is_refused(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Intellego-Token: {server.token}"
                     "\r\nContent-Type: application/json\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 411")


@pytest.mark.parametrize("body, fragment", [
    ({"method": "Saliency", "colour": "red"}, "unknown request key(s) ['colour']"),
    ({"method": "IntegratedGradients", "arguments": {"n_steps": 100000}}, "between 1 and 300, got 100000"),
    ({"method": "IntegratedGradients", "arguments": {"bogus": 1}}, "unknown argument(s) ['bogus']"),
    ({"count": 1000}, "count must be an integer between 1 and 24"),
    ({"method": "Saliency", "arguments": {"abs": 1}}, "must be true or false"),
    ("Saliency", "request must be a JSON object"),
])
def test_unknown_keys_and_out_of_range_arguments_are_400_with_the_message(server, body, fragment):
    status, _, answer = ask(server, "POST", "/api/jobs", body)
    assert status == 400 and fragment in answer["error"] and "Traceback" not in answer["error"]


def test_a_job_runs_and_can_be_polled_and_cancelled(server):
    status, _, job = ask(server, "POST", "/api/jobs", {"method": "IntegratedGradients", "count": 3,
                                                       "arguments": {"n_steps": 8}})
    assert status == 202 and job["state"] in ("queued", "running", "done")
    deadline = time.monotonic() + 10
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.02)
        job = ask(server, "GET", f"/api/jobs/{job['id']}")[2]
    assert job["state"] == "done" and len(job["result"]["samples"]) == 3
    status, _, cancelled = ask(server, "POST", f"/api/jobs/{job['id']}/cancel", raw=b"", headers={
        "Content-Type": "application/json"})
    assert status == 200 and cancelled["state"] == "done"  # already finished: cancelling changes nothing
    assert ask(server, "GET", "/api/jobs/j999")[0] == 404
    assert ask(server, "POST", "/api/jobs/j999/cancel", raw=b"")[0] == 404


def test_methods_other_than_get_and_post_are_refused(server):
    for method in ("PUT", "DELETE", "PATCH"):
        assert ask(server, method, "/api/jobs", raw=b"")[0] == 405


def test_busy_worker_answers_429(server, monkeypatch):
    def busy(request):
        raise Busy("too many requests are waiting; cancel one or try again")

    monkeypatch.setattr(server.session, "submit", busy)
    status, _, body = ask(server, "POST", "/api/jobs", {"method": "Saliency"})
    assert status == 429 and "too many" in body["error"]


def test_a_slow_client_is_disconnected_after_the_request_timeout(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /api/config HTTP/1.1\r\n")  # never finishes its headers
        start = time.monotonic()
        assert sock.recv(1024) == b""
        assert time.monotonic() - start < 3


def test_cli_export_writes_one_file(tmp_path, capsys):
    target = tmp_path / "out.html"
    assert main(["--data", "tabular", "--samples", "16", "--count", "3", "--export", str(target),
                 "--methods", "Saliency,InputXGradient"]) == 0
    assert f"wrote {target}" in capsys.readouterr().out
    text = target.read_text()
    assert "staticTransport(data)" in text and "Saliency(abs=True)" in text and "InputXGradient()" in text
    assert "http://" not in text and "https://" not in text


def test_cli_export_reports_a_bad_method(tmp_path, capsys):
    assert main(["--data", "tabular", "--samples", "4", "--export", str(tmp_path / "x.html"), "--methods", "Nope"]) == 2
    assert "method must be one of" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


@pytest.mark.parametrize("module", [pytest.param("intellego.insights", marks=pytest.mark.slow),
                                    "intellego.insights.example"])
def test_cli_serves_the_demo_until_interrupted(module):
    # A run started with SIGINT ignored (`make test &`, a CI runner) would pass SIG_IGN on to the child, which
    # then never sees the interrupt. A caught signal is reset to the default at exec, so catch it while spawning.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", module, "--port", "0", "--samples", "16"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=Path(__file__).parent.parent)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        line = proc.stdout.readline()
        assert line.startswith("intellego insights: open http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split("open ", 1)[1].strip()
        port = int(url.split(":")[2].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", url.split(str(port), 1)[1])
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
