"""``llm.openai()``: the real openai SDK, sending through httpx2, measured like ``llm.chat``.

The pytester tests below are what a product's workflow tests look like when the code under test
already uses the SDK: plain calls, streams with usage, tool calls. The gate must see every HTTP
attempt the SDK made, including the SDK's own retries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from gatesettings import loose_gate

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
TIMING: dict[str, Any] = {"ttft_ms": 2, "latency_ms": 8}
# Timing is not what these tests are about: report it, do not gate on it.
UNGATED_TIMING: dict[str, Any] = {
    "latency_p50_max_ratio": None,
    "latency_p95_max_ratio": None,
    "ttft_p95_max_ratio": None,
}
# Four cases bound a rate difference with no event on either arm only to about +-49 points: the
# default margins of 1-2 points cannot be shown by them. A test about measurement gates the rates
# with margins four cases can show, so that a healthy run can pass.
FOUR_CASE_MARGINS: dict[str, Any] = loose_gate(0.6)

WORKFLOWS = """
    import json

    TOOLS = [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Look an order up by its id.",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            },
        }
    ]
    HELLO = [{"role": "user", "content": "Hello, I have a question."}]
    ORDER = [{"role": "user", "content": "Where is my order SO-10423?"}]


    def test_plain(llm):
        client = llm.openai()
        completion = client.chat.completions.create(model=llm.model, messages=HELLO)
        choice = completion.choices[0]
        assert choice.message.content.startswith("Thank you for contacting us.")
        assert choice.finish_reason == "stop"
        assert completion.usage.completion_tokens > 0


    def test_stream_with_usage(llm):
        client = llm.openai()
        stream = client.chat.completions.create(
            model=llm.model,
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.startswith("Thank you for contacting us.")
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == []
        assert chunks[-1].usage.total_tokens > 0


    def test_tool_call(llm):
        client = llm.openai()
        completion = client.chat.completions.create(model=llm.model, messages=ORDER, tools=TOOLS)
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls
        assert call.function.name == "lookup_order"
        assert json.loads(call.function.arguments) == {"order_id": "SO-10423"}


    def test_tool_call_streamed(llm):
        client = llm.openai()
        stream = client.chat.completions.create(
            model=llm.model,
            messages=ORDER,
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
        name, arguments, finish = "", "", None
        for chunk in stream:
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for delta in choice.delta.tool_calls or ():
                    name += delta.function.name or ""
                    arguments += delta.function.arguments or ""
        assert finish == "tool_calls"
        assert name == "lookup_order"
        assert json.loads(arguments) == {"order_id": "SO-10423"}
"""


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_sdk_calls_are_measured_on_both_arms(
    gate_project: Callable[..., GateProject], args: tuple[str, ...]
) -> None:
    project = gate_project(
        {STABLE: TIMING, CANDIDATE: TIMING}, stable=STABLE, gate=FOUR_CASE_MARGINS
    )
    project.pytester.makepyfile(WORKFLOWS)

    result = project.pytester.runpytest("--candidate-model", CANDIDATE, *args)

    result.assert_outcomes(passed=8)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*modelgate verdict: PASS*"])
    # Every SDK call reached the simulator once: no retries, no side requests.
    assert sorted(model for model, _, _ in project.sim.requests) == [CANDIDATE] * 4 + [STABLE] * 4
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert verdict["tests"]["stable"]["passed"] == verdict["tests"]["candidate"]["passed"] == 4
    metrics = verdict["metrics"]
    # Four attempts per arm, none failed: four paired cases, each shown within the margin.
    assert metrics["error_rate"]["samples"] == {"stable": 4, "candidate": 4}
    assert (metrics["error_rate"]["stable"], metrics["error_rate"]["candidate"]) == (0.0, 0.0)
    assert metrics["error_rate"]["n"] == 4
    assert metrics["error_rate"]["status"] == "ok"
    # Two streams per arm carry a time to first token.
    ttft = metrics["ttft_p95_ms"]
    assert ttft["samples"] == {"stable": 2, "candidate": 2}
    assert ttft["stable"] > 0
    assert ttft["candidate"] > 0
    assert metrics["latency_p95_ms"]["samples"] == {"stable": 4, "candidate": 4}
    # Usage arrived for every call, streams included, so cost is known and identical.
    cost = metrics["cost_per_call_usd"]
    assert cost["samples"] == {"stable": 4, "candidate": 4}
    assert cost["stable"] is not None
    assert cost["stable"] > 0
    assert cost["candidate"] == cost["stable"]
    # Four cases give no bootstrap interval (fewer than five): reported, not gated here.
    assert cost["status"] == "not_gated"
    assert metrics["tokens_per_call"]["stable"] == metrics["tokens_per_call"]["candidate"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_sdk_retries_are_recorded_as_attempts(
    gate_project: Callable[..., GateProject], stream: bool
) -> None:
    # A tiny retry-after-ms keeps the SDK's own backoff short.
    script = [{"status": 503, "message": "Upstream overloaded.", "retry_after_s": 0.01}]
    project = gate_project(
        {STABLE: TIMING, CANDIDATE: {**TIMING, "script": script}},
        stable=STABLE,
        gate=UNGATED_TIMING,
    )
    project.pytester.makepyfile(
        f"""
        STREAM = {stream}

        def test_answer(llm):
            client = llm.openai()
            kwargs = {{}}
            if STREAM:
                kwargs = {{"stream": True, "stream_options": {{"include_usage": True}}}}
            response = client.chat.completions.create(
                model=llm.model,
                messages=[{{"role": "user", "content": "Hello, I have a question."}}],
                **kwargs,
            )
            if STREAM:
                text = "".join(c.choices[0].delta.content or "" for c in response if c.choices)
            else:
                text = response.choices[0].message.content
            assert text.startswith("Thank you for contacting us.")
            statuses = [(r.call_index, r.attempt, r.status) for r in llm.log.records()]
            if llm.arm == "candidate":
                assert statuses == [(0, 1, 503), (0, 2, 200)]
            else:
                assert statuses == [(0, 1, 200)]
        """
    )

    result = project.pytester.runpytest("--candidate-model", CANDIDATE)

    result.assert_outcomes(passed=2)
    candidate_statuses = [s for model, _, s in project.sim.requests if model == CANDIDATE]
    assert candidate_statuses == [503, 200]
    verdict = project.verdict()
    error_rate = verdict["metrics"]["error_rate"]
    # One of the candidate's two attempts failed: the SDK's retry is an attempt on record.
    assert (error_rate["stable"], error_rate["candidate"]) == (0.0, 0.5)
    assert error_rate["n"] == 1
    # One case cannot show a regression (nor rule one out): the honest answer is inconclusive,
    # which exits 0 without --modelgate-strict.
    assert error_rate["status"] == "inconclusive"
    assert error_rate["cases_needed"] > 1
    assert verdict["regressions"] == []
    assert verdict["verdict"] == "inconclusive"
    assert result.ret == 0
    # Latency and cost describe the successful attempt only: the 503 came back at once and was
    # not billed, so it neither pulls the median below the simulated latency nor halves the cost
    # per call.
    latency = verdict["metrics"]["latency_p50_ms"]
    assert latency["samples"] == {"stable": 1, "candidate": 1}
    assert latency["candidate"] >= TIMING["latency_ms"]
    cost = verdict["metrics"]["cost_per_call_usd"]
    assert cost["samples"] == {"stable": 1, "candidate": 1}
    assert cost["candidate"] == cost["stable"]
    assert cost["change"] == 1.0


def test_sdk_does_not_retry_a_bad_request(gate_project: Callable[..., GateProject]) -> None:
    script = [{"status": 400, "message": "Invalid value for 'temperature'."}]
    project = gate_project({STABLE: {**TIMING, "script": script}}, stable=STABLE)
    project.pytester.makepyfile(
        """
        import openai
        import pytest

        def test_answer(llm):
            client = llm.openai()
            with pytest.raises(openai.BadRequestError, match="Invalid value for 'temperature'"):
                client.chat.completions.create(
                    model=llm.model, messages=[{"role": "user", "content": "Hi"}], temperature=9
                )
            (record,) = llm.log.records()
            assert (record.status, record.error_kind) == (400, "bad_request")
            assert record.client == "openai"
        """
    )

    result = project.pytester.runpytest()

    result.assert_outcomes(passed=1)
    assert [s for _, _, s in project.sim.requests] == [400]
    error_rate = project.verdict()["metrics"]["error_rate"]
    assert (error_rate["samples"]["stable"], error_rate["stable"]) == (1, 1.0)
