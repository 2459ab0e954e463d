"""Insights notebook widget, Python side: traits, assets and the message protocol."""

from __future__ import annotations

import time

import torch
from torch import nn

from intellego.insights import Batch, Session
from intellego.insights.assets import asset
from intellego.insights.features import GeneralFeature
from intellego.insights.widget import InsightsWidget


class _Slow(nn.Module):
    def __init__(self, delay: float = 0.0):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.delay = delay

    def forward(self, x):
        time.sleep(self.delay)
        return self.lin(x)


def _widget(delay: float = 0.0) -> tuple[InsightsWidget, list]:
    torch.manual_seed(0)
    data = [Batch(torch.randn(8, 3), torch.tensor([0, 1] * 4))]
    session = Session([_Slow(delay)], ["a", "b"], [GeneralFeature("x", ["u", "v", "w"])], data)
    widget = InsightsWidget(session)
    sent: list = []
    widget.send = lambda content, buffers=None: sent.append(content)
    return widget, sent


def _until(sent, kind, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in sent if m["type"] == kind]
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"no {kind!r} message in {sent}")


def test_widget_ships_the_same_front_end_and_the_config():
    widget, _ = _widget()
    assert widget._esm == asset("app.js") and widget._css == asset("app.css")
    assert "export default" in widget._esm
    assert widget.config == widget._session.config()
    assert "config" in widget.keys


def test_run_message_is_answered_with_progress_then_the_result():
    widget, sent = _widget()
    widget._handle_custom_msg({"type": "run", "id": "r1", "request": {"method": "Saliency", "count": 3}}, [])
    (result,) = _until(sent, "result")
    assert result["id"] == "r1" and len(result["result"]["samples"]) == 3
    assert all(m["id"] == "r1" for m in sent)
    progress = [m for m in sent if m["type"] == "progress"]
    assert progress and {"done", "total", "phase"} <= set(progress[0])


def test_bad_requests_and_messages_are_answered_with_errors():
    widget, sent = _widget()
    widget._handle_custom_msg({"type": "run", "id": "r2", "request": {"method": "Saliency", "count": 99}}, [])
    assert sent == [{"type": "error", "id": "r2", "message": "count must be an integer between 1 and 24, got 99"}]
    widget._handle_custom_msg({"type": "launch", "id": "r3"}, [])
    assert sent[-1] == {"type": "error", "id": "r3", "message": "unknown message type 'launch'"}
    widget._handle_custom_msg({"type": "run", "id": 5, "request": {}}, [])
    assert sent[-1]["id"] is None and "message id must be a short str" in sent[-1]["message"]
    widget._handle_custom_msg("not a dict", [])
    assert len(sent) == 3


def test_cancel_message_stops_the_job():
    widget, sent = _widget(delay=0.05)
    widget._handle_custom_msg({"type": "run", "id": "r4", "request": {"method": "IntegratedGradients", "count": 8}},
                              [])
    _until(sent, "progress")
    widget._handle_custom_msg({"type": "cancel", "id": "r4"}, [])
    (cancelled,) = _until(sent, "cancelled")
    assert cancelled == {"type": "cancelled", "id": "r4"}  # a cancel is not an error: the front end says so
    assert not [m for m in sent if m["type"] in ("result", "error")]
