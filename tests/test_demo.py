"""The README's first command: the bundled storm through the real daemon."""

from __future__ import annotations

import io

from correlator.demo import run_demo


def test_demo_collapses_the_bundled_storm_into_a_switch_incident() -> None:
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert "daemon up: ZeroMQ tcp://127.0.0.1:" in text
    assert "OPEN" in text and "RESOLVED" in text
    assert "Largest incident: 79 CIs behind sw-3" in text
    assert "alerts received           1,599" in text
    assert "rejected                      0" in text
