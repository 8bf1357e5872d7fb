"""``llm.chat(..., stream=True)`` end to end: time to first token, its gate, and cut streams.

The simulator sends the first chunk after ``ttft_ms`` and spreads the rest of ``latency_ms`` over
the later chunks, so setting the two far apart (5 ms and 100 ms) makes the measured values
checkable from inside the pytester test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"

STREAM_TIMING = """
    import pytest

    @pytest.mark.parametrize("question", ["Hello, I have a question.", "Where is my parcel?"])
    def test_stream(llm, question):
        reply = llm.chat([{"role": "user", "content": question}], stream=True)
        print(f"TTFT={reply.ttft_ms:.1f} LATENCY={reply.latency_ms:.1f} ATTEMPTS={reply.attempts}")
        assert reply.text.startswith("Thank you for contacting us.")
        assert reply.finish_reason == "stop"
        assert reply.attempts == 1
        # The stream was read to the end: usage arrived (include_usage is added by default).
        assert reply.usage.completion_tokens > 0
        assert reply.raw[-1]["choices"] == []
        # ttft_ms 5 and latency_ms 100 in the scenario (plus scheduling noise).
        assert 5 <= reply.ttft_ms < 60
        assert 100 <= reply.latency_ms < 1000
        assert reply.ttft_ms < reply.latency_ms
"""


@pytest.mark.parametrize("workers", [None, 2], ids=["serial", "xdist"])
def test_stream_measures_ttft_before_latency(
    gate_project: Callable[..., GateProject], workers: int | None
) -> None:
    project = gate_project({STABLE: {"ttft_ms": 5, "latency_ms": 100}}, stable=STABLE)
    project.pytester.makepyfile(STREAM_TIMING)

    if workers:
        # A worker's output does not reach the terminal; the timings reach the verdict.
        result = project.pytester.runpytest_subprocess("-n", str(workers))
    else:
        result = project.pytester.runpytest("-s")
        result.stdout.fnmatch_lines(["*TTFT=* LATENCY=* ATTEMPTS=1*"] * 2)

    result.assert_outcomes(passed=2)
    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    metrics = verdict["metrics"]
    ttft, latency = metrics["ttft_p95_ms"], metrics["latency_p95_ms"]
    assert ttft["samples"]["stable"] == 2
    assert 5 <= ttft["stable"] < 60
    assert latency["stable"] >= 100
    assert ttft["stable"] < latency["stable"]


def test_non_streaming_call_has_no_ttft(gate_project: Callable[..., GateProject]) -> None:
    project = gate_project({STABLE: {"ttft_ms": 5, "latency_ms": 20}}, stable=STABLE)
    project.pytester.makepyfile(
        """
        def test_plain(llm):
            reply = llm.chat([{"role": "user", "content": "Hello, I have a question."}])
            assert reply.ttft_ms is None
            assert reply.latency_ms >= 20
        """
    )

    result = project.pytester.runpytest()

    result.assert_outcomes(passed=1)
    ttft = project.verdict()["metrics"]["ttft_p95_ms"]
    assert ttft["samples"]["stable"] == 0
    assert ttft["stable"] is None


def test_ttft_regression_fails_the_gate(gate_project: Callable[..., GateProject]) -> None:
    # Same total latency on both arms; only the first token comes much later. A p95 is gated only
    # over at least 100 calls per arm (below, it is the few slowest calls), so 100 cases. The gap
    # is wide because the tail is where a loaded machine adds tens of milliseconds to either arm.
    cases = 100
    project = gate_project(
        {
            STABLE: {"ttft_ms": 2, "latency_ms": 40},
            CANDIDATE: {"ttft_ms": 40, "latency_ms": 40},
        },
        stable=STABLE,
        # Only TTFT is under test: total latency is equal by design, and one scheduling hiccup
        # on a loaded 2-core machine must not turn it into a second regression.
        gate={"latency_p50_max_ratio": None, "latency_p95_max_ratio": None},
    )
    project.pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.parametrize("n", range({cases}))
        def test_stream(llm, n):
            question = {{"role": "user", "content": f"Question {{n}}, please."}}
            reply = llm.chat([question], stream=True)
            assert reply.ttft_ms is not None
        """
    )

    result = project.pytester.runpytest("--candidate-model", CANDIDATE)

    result.assert_outcomes(passed=2 * cases)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*p95 time to first token*REGRESSED*",
            "regression: p95 time to first token: *",
            "*modelgate verdict: FAIL*",
        ]
    )
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert verdict["exit_status"] == 1
    assert verdict["complete"] is True
    assert [(r["metric"], r["scope"]) for r in verdict["regressions"]] == [
        ("ttft_p95_ms", "overall")
    ]
    ttft = verdict["metrics"]["ttft_p95_ms"]
    assert ttft["status"] == "regressed"
    assert ttft["samples"] == {"stable": cases, "candidate": cases}
    # x20 in the scenario; connection setup and scheduling add to both arms.
    assert ttft["change"] > 1.5
    assert ttft["n"] == cases
    # A tail quantile's significance comes from its own bootstrap, not a rank test on medians.
    assert ttft["test"] == "paired_bootstrap"
    assert ttft["change_interval"][0] > 1.2  # the whole interval beyond x1.20
    assert ttft["p_value"] <= ttft["p_adjusted"] < 0.05
    message = verdict["regressions"][0]["message"]
    assert message.startswith("p95 time to first token: ")
    assert message.endswith(f", n={cases} cases): worse than allowed x1.20")
    assert verdict["reasons"] == [message]


STREAM_CUT = """
    def test_stream(llm):
        reply = llm.chat([{"role": "user", "content": "Hello, I have a question."}], stream=True)
        assert reply.attempts == 2
        assert reply.finish_reason == "stop"
        assert reply.text.startswith("Thank you for contacting us.")
        # The record of the reply is the second attempt of the first call.
        assert (reply.record.call_index, reply.record.attempt) == (0, 2)
        cut, ok = llm.log.records()
        assert cut.error_kind == "stream_cut"
        assert cut.status == 200
        assert ok.error_kind is None
"""


def test_stream_cut_is_retried_and_recorded(gate_project: Callable[..., GateProject]) -> None:
    behaviour: dict[str, Any] = {"ttft_ms": 2, "latency_ms": 10, "script": [{"stream_cut": True}]}
    project = gate_project({STABLE: behaviour}, stable=STABLE)
    project.pytester.makepyfile(STREAM_CUT)

    result = project.pytester.runpytest()

    result.assert_outcomes(passed=1)
    assert result.ret == 0
    # Both attempts reached the simulator (a cut stream is answered 200, then dropped).
    assert [status for _, _, status in project.sim.requests] == [200, 200]
    verdict = project.verdict()
    error_rate = verdict["metrics"]["error_rate"]
    assert error_rate["samples"]["stable"] == 2
    assert error_rate["stable"] == 0.5
    # Only the complete stream is a latency / ttft sample.
    assert verdict["metrics"]["ttft_p95_ms"]["samples"]["stable"] == 1


def test_candidate_stream_cuts_fail_the_gate_on_error_rate(
    gate_project: Callable[..., GateProject],
) -> None:
    # Three candidate streams in ten are cut. Each cut is retried (the tests pass) but the gate
    # still counts it, over enough cases to show the rise against the default +1.0 pts margin.
    cases = 50
    project = gate_project(
        {
            STABLE: {"ttft_ms": 2, "latency_ms": 10},
            CANDIDATE: {"ttft_ms": 2, "latency_ms": 10, "stream_cut": 0.3},
        },
        stable=STABLE,
        # Only the error rate is under test: timing is not gated, and the other rates get a margin
        # fifty cases can show (they are +-7 points wide with no event on either arm).
        gate={
            "latency_p50_max_ratio": None,
            "latency_p95_max_ratio": None,
            "ttft_p95_max_ratio": None,
            "pass_rate_max_drop": 0.2,
            "fallback_rate_max_rise": 0.2,
        },
        client={"max_retries": 6},
    )
    project.pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.parametrize("n", range({cases}))
        def test_stream(llm, n):
            reply = llm.chat([{{"role": "user", "content": f"Hello there, {{n}}."}}], stream=True)
            assert reply.finish_reason == "stop"
            if llm.arm == "stable":
                assert reply.attempts == 1
        """
    )

    result = project.pytester.runpytest("--candidate-model", CANDIDATE)

    result.assert_outcomes(passed=2 * cases)
    # A cut stream is answered 200 and then dropped: every attempt beyond one per case was cut.
    attempts = sum(model == CANDIDATE for model, _, _ in project.sim.requests)
    cuts = attempts - cases
    assert cuts > 0
    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert [(r["metric"], r["scope"]) for r in verdict["regressions"]] == [
        ("error_rate", "overall")
    ]
    error_rate = verdict["metrics"]["error_rate"]
    assert (error_rate["stable"], error_rate["candidate"]) == (0.0, round(cuts / attempts, 6))
    assert error_rate["status"] == "regressed"
    assert error_rate["n"] == cases
    assert error_rate["test"] == "wilcoxon+paired_bootstrap"
    assert error_rate["change_interval"][0] > 1.0  # the whole interval beyond +1.0 pts
    assert error_rate["p_value"] <= error_rate["p_adjusted"] < 0.05
    assert verdict["metrics"]["pass_rate"]["status"] == "ok"
    message = verdict["regressions"][0]["message"]
    assert message.startswith(f"error rate: 0.0% -> {cuts / attempts:.1%} (")
    assert message.endswith(f", n={cases} cases): worse than allowed +1.0 pts")
    result.stdout.fnmatch_lines([f"regression: {message}", "*modelgate verdict: FAIL*"])
