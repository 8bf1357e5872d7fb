"""Editing one route of modelgate.yaml in place: comments and every other line survive."""

from __future__ import annotations

import pytest
import yaml

from pytest_modelgate.gateway.yamledit import YamlEditError, edit_route

CONFIG = """\
# The support desk's models.
stable: deepseek-chat

routes:
  # Triage is the busiest workflow.
  ticket_triage:
    stable: deepseek-chat      # today's model
    canary_percent: 0          # raised by modelgate rollout
    kill_switch:
      env: KILL_TRIAGE
    rollback:
    - {metric: error_rate, op: '>', threshold: 0.02, unit: rate}
    - {metric: latency_p95_ms, op: '>', threshold: 900.0, unit: ms}

  # Replies are slower; keep them on stable.
  customer_reply:
    stable: deepseek-chat

gate:
  error_rate_max_rise: 0.01   # one point
"""


def test_changed_fields_are_replaced_and_everything_else_kept() -> None:
    triggers = [{"metric": "error_rate", "op": ">", "threshold": 0.015, "unit": "rate"}]
    new = edit_route(
        CONFIG,
        "ticket_triage",
        {"candidate": "qwen-max", "canary_percent": 5, "rollback": triggers},
    )
    assert "    canary_percent: 5          # raised by modelgate rollout" in new
    assert "    - {metric: error_rate, op: '>', threshold: 0.015, unit: rate}" in new
    assert "latency_p95_ms" not in new
    for kept in ("# The support desk's models.", "  # Triage is the busiest workflow.",
                 "    stable: deepseek-chat      # today's model", "      env: KILL_TRIAGE",
                 "  # Replies are slower; keep them on stable.",
                 "  error_rate_max_rise: 0.01   # one point"):  # fmt: skip
        assert kept in new.splitlines(), kept
    data = yaml.safe_load(new)
    route = data["routes"]["ticket_triage"]
    assert (route["candidate"], route["canary_percent"], route["rollback"]) == (
        "qwen-max",
        5,
        triggers,
    )
    # The new field goes after the route's last field, before the blank line and the comment.
    lines = new.splitlines()
    assert lines.index("    candidate: qwen-max") < lines.index(
        "  # Replies are slower; keep them on stable."
    )
    assert data["routes"]["customer_reply"] == {"stable": "deepseek-chat"}
    assert data["gate"] == {"error_rate_max_rise": 0.01}


def test_a_removed_field_goes_with_its_nested_lines() -> None:
    new = edit_route(CONFIG, "ticket_triage", {}, removals=("rollback", "kill_switch"))
    route = yaml.safe_load(new)["routes"]["ticket_triage"]
    assert route == {"stable": "deepseek-chat", "canary_percent": 0}
    assert "KILL_TRIAGE" not in new
    assert "# Replies are slower" in new


def test_what_cannot_be_edited_in_place_is_refused_naming_the_line() -> None:
    flow = CONFIG.replace(
        "  customer_reply:\n    stable: deepseek-chat", "  customer_reply: {stable: deepseek-chat}"
    )
    with pytest.raises(YamlEditError, match=r"line 16: route 'customer_reply' is in flow style"):
        edit_route(flow, "customer_reply", {"candidate": "qwen-max"})
    with pytest.raises(YamlEditError, match="no block-style entry 'nope'"):
        edit_route(CONFIG, "nope", {"candidate": "qwen-max"})
    anchored = CONFIG.replace("      env: KILL_TRIAGE", "      env: &kill KILL_TRIAGE")
    with pytest.raises(YamlEditError, match="anchors or aliases"):
        edit_route(anchored, "ticket_triage", {"candidate": "qwen-max"})
    with pytest.raises(YamlEditError, match="tabs"):
        edit_route(
            CONFIG.replace("stable: deepseek-chat\n\n", "stable:\tdeepseek-chat\n\n"), "x", {}
        )
