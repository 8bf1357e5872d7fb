"""Retries of ``llm.chat`` end to end: what is retried, what fails at once, what is recorded.

Each test runs a pytester project against a real simulator on loopback whose ``script`` forces the
first answers of a model. What the simulator served (``sim.requests``) is the ground truth for how
many HTTP attempts were made; the verdict's ``error_rate`` samples are what the gate recorded.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import GateProject

MODEL = "sim-stable"
FAST: dict[str, Any] = {"latency_ms": 2}


def call_once(*, attempts: int, max_elapsed: float, min_elapsed: float = 0.0) -> str:
    """A test module making one call that succeeds after ``attempts`` HTTP attempts."""
    return f"""
        import time

        def test_call(llm):
            started = time.perf_counter()
            reply = llm.chat([{{"role": "user", "content": "Hello, I have a question."}}])
            elapsed = time.perf_counter() - started
            print(f"ATTEMPTS={{reply.attempts}} ELAPSED={{elapsed:.3f}}")
            assert reply.text.startswith("Thank you for contacting us.")
            assert reply.attempts == {attempts}
            assert {min_elapsed} <= elapsed < {max_elapsed}
    """


# One call that is expected to raise; the test re-raises it so that pytest reports it.
CALL_FAILS = """
    import time

    import pytest

    from pytest_modelgate.errors import ModelAPIError

    def test_call(llm):
        started = time.perf_counter()
        with pytest.raises(ModelAPIError) as caught:
            llm.chat([{"role": "user", "content": "Hello, I have a question."}])
        elapsed = time.perf_counter() - started
        error = caught.value
        print(f"STATUS={error.status} KIND={error.error_kind} ATTEMPTS={error.attempts}")
        assert elapsed < 1.0
        raise error
"""


def _statuses(project: GateProject) -> list[int]:
    return [status for _, _, status in project.sim.requests]


def _recorded_attempts(verdict: dict[str, Any]) -> tuple[int, float]:
    """Attempts the gate recorded on the stable arm and the share that failed."""
    error_rate = verdict["metrics"]["error_rate"]
    return error_rate["samples"]["stable"], error_rate["stable"]


def test_rate_limit_is_retried_after_retry_after_capped(
    gate_project: Callable[..., GateProject],
) -> None:
    # The provider asks for 5 s; the configured cap (0.05 s) wins, so the retry comes quickly.
    project = gate_project(
        {MODEL: {**FAST, "script": [{"status": 429, "retry_after_s": 5}]}},
        stable=MODEL,
        client={"retry_after_cap_s": 0.05},
    )
    project.pytester.makepyfile(call_once(attempts=2, max_elapsed=1.0))

    result = project.pytester.runpytest("-s")

    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*ATTEMPTS=2 ELAPSED=*"])
    assert _statuses(project) == [429, 200]
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert _recorded_attempts(verdict) == (2, 0.5)


def test_rate_limit_waits_as_long_as_retry_after_says(
    gate_project: Callable[..., GateProject],
) -> None:
    # 0.3 s is below the cap: the client must actually wait that long before the retry.
    project = gate_project(
        {MODEL: {**FAST, "script": [{"status": 429, "retry_after_s": 0.3}]}},
        stable=MODEL,
        client={"retry_after_cap_s": 5},
    )
    project.pytester.makepyfile(call_once(attempts=2, min_elapsed=0.3, max_elapsed=2.0))

    result = project.pytester.runpytest("-s")

    result.assert_outcomes(passed=1)
    assert _statuses(project) == [429, 200]
    assert _recorded_attempts(project.verdict()) == (2, 0.5)


@pytest.mark.parametrize(
    ("script", "args"),
    [
        pytest.param([{"status": 500}], (), id="500"),
        pytest.param([{"status": 503}], (), id="503"),
        pytest.param([{"status": 500}, {"status": 503}], (), id="500-then-503"),
        # Records travel on the reports of xdist workers: each attempt must count once.
        pytest.param([{"status": 500}, {"status": 503}], ("-n", "2"), id="500-then-503-xdist"),
    ],
)
def test_server_errors_are_retried_then_succeed(
    gate_project: Callable[..., GateProject],
    script: list[dict[str, Any]],
    args: tuple[str, ...],
) -> None:
    project = gate_project({MODEL: {**FAST, "script": script}}, stable=MODEL)
    attempts = len(script) + 1
    project.pytester.makepyfile(call_once(attempts=attempts, max_elapsed=1.0))

    result = project.pytester.runpytest(*args)

    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert _statuses(project) == [entry["status"] for entry in script] + [200]
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert _recorded_attempts(verdict) == (attempts, pytest.approx(len(script) / attempts))


def test_cut_body_is_retried(gate_project: Callable[..., GateProject]) -> None:
    # A non-streaming answer whose connection drops after half the announced body.
    project = gate_project({MODEL: {**FAST, "script": [{"stream_cut": True}]}}, stable=MODEL)
    project.pytester.makepyfile(call_once(attempts=2, max_elapsed=1.0))

    result = project.pytester.runpytest()

    result.assert_outcomes(passed=1)
    assert _statuses(project) == [200, 200]
    assert _recorded_attempts(project.verdict()) == (2, 0.5)


def test_timeout_is_retried(gate_project: Callable[..., GateProject]) -> None:
    # The first answer takes 1.5 s, far beyond the 0.2 s read timeout; the retry is quick.
    project = gate_project(
        {MODEL: {**FAST, "script": [{"latency_ms": 1500}]}},
        stable=MODEL,
        client={"timeout_s": 0.2},
    )
    project.pytester.makepyfile(call_once(attempts=2, min_elapsed=0.2, max_elapsed=1.2))

    result = project.pytester.runpytest()

    result.assert_outcomes(passed=1)
    assert _recorded_attempts(project.verdict()) == (2, 0.5)


def test_connection_errors_are_retried_then_fail(
    gate_project: Callable[..., GateProject],
) -> None:
    # A port nobody listens on: every attempt is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    project = gate_project({MODEL: FAST}, stable=MODEL)
    project.write_config({MODEL: {"base_url": f"http://127.0.0.1:{port}/v1"}}, stable=MODEL)
    project.pytester.makepyfile(CALL_FAILS)

    result = project.pytester.runpytest("-s")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*STATUS=None KIND=connection ATTEMPTS=3",
            "*ModelAPIError: sim-stable: connection: *(gave up after 3 attempts)*",
        ]
    )
    assert project.sim.requests == []
    assert _recorded_attempts(project.verdict()) == (3, 1.0)


def test_exhausted_retries_fail_the_test_naming_model_and_attempts(
    gate_project: Callable[..., GateProject],
) -> None:
    # max_retries 2 (the default): three attempts, every one a 503.
    project = gate_project(
        {MODEL: {**FAST, "script": [{"status": 503, "message": "The engine is overloaded."}] * 4}},
        stable=MODEL,
    )
    project.pytester.makepyfile(CALL_FAILS)

    result = project.pytester.runpytest("-s")

    result.assert_outcomes(failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*STATUS=503 KIND=server_error ATTEMPTS=3",
            "*ModelAPIError: sim-stable: HTTP 503 *The engine is overloaded*"
            "(gave up after 3 attempts)*",
        ]
    )
    assert _statuses(project) == [503, 503, 503]
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert verdict["exit_status"] == 1
    assert _recorded_attempts(verdict) == (3, 1.0)


def _wrong_key(project: GateProject, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_TEST_WRONG_KEY", "sk-wrong-key-9999")
    project.write_config({MODEL: {"api_key_env": "MODELGATE_TEST_WRONG_KEY"}}, stable=MODEL)


def _unknown_model_id(project: GateProject, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write_config({MODEL: {"model_id": "sim-stable-v9"}}, stable=MODEL)


def _no_change(project: GateProject, monkeypatch: pytest.MonkeyPatch) -> None:
    pass


@pytest.mark.parametrize(
    ("behaviour", "setup", "status", "kind", "quoted"),
    [
        pytest.param(
            {"script": [{"status": 400, "message": "Invalid value for 'temperature'."}]},
            _no_change,
            400,
            "bad_request",
            "Invalid value for 'temperature'",
            id="400-bad-request",
        ),
        pytest.param({}, _wrong_key, 401, "auth", "Incorrect API key provided", id="401-wrong-key"),
        pytest.param(
            {},
            _unknown_model_id,
            404,
            "not_found",
            "The model `sim-stable-v9` does not exist",
            id="404-unknown-model-id",
        ),
        pytest.param(
            {"script": [{"status": 403, "message": "Access denied: model not enabled."}]},
            _no_change,
            403,
            "permission",
            "Access denied: model not enabled",
            id="403-permission",
        ),
        pytest.param(
            # A 429 that means "out of quota" is not a rate limit: retrying cannot help.
            {
                "script": [
                    {
                        "status": 429,
                        "code": "insufficient_quota",
                        "message": "You exceeded your current quota.",
                        "retry_after_s": 0,
                    }
                ]
            },
            _no_change,
            429,
            "quota",
            "You exceeded your current quota",
            id="429-quota",
        ),
        pytest.param(
            {"balance_error": True},
            _no_change,
            402,
            "quota",
            "Insufficient Balance",
            id="402-balance",
        ),
    ],
)
def test_client_errors_fail_at_once_quoting_the_provider(
    gate_project: Callable[..., GateProject],
    monkeypatch: pytest.MonkeyPatch,
    behaviour: dict[str, Any],
    setup: Callable[[GateProject, pytest.MonkeyPatch], None],
    status: int,
    kind: str,
    quoted: str,
) -> None:
    project = gate_project({MODEL: {**FAST, **behaviour}}, stable=MODEL)
    setup(project, monkeypatch)
    project.pytester.makepyfile(CALL_FAILS)

    result = project.pytester.runpytest("-s")

    result.assert_outcomes(failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            f"*STATUS={status} KIND={kind} ATTEMPTS=1",
            f"*ModelAPIError: sim-stable: HTTP {status} *{quoted}*(not retried)*",
        ]
    )
    # Exactly one request reached the provider: nothing was retried.
    assert _statuses(project) == [status]
    # The key never shows up in what the test prints.
    assert "sk-wrong-key-9999" not in result.stdout.str()
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert _recorded_attempts(verdict) == (1, 1.0)


def test_max_retries_zero_disables_retries(gate_project: Callable[..., GateProject]) -> None:
    project = gate_project(
        {MODEL: {**FAST, "script": [{"status": 503}, {"status": 429, "retry_after_s": 0}]}},
        stable=MODEL,
        client={"max_retries": 0},
    )
    project.pytester.makepyfile(
        CALL_FAILS,
        test_second="""
            import pytest

            from pytest_modelgate.errors import ModelAPIError

            def test_rate_limited(llm):
                with pytest.raises(ModelAPIError, match=r"HTTP 429 .*gave up after 1 attempt\\)"):
                    llm.chat([{"role": "user", "content": "Another question."}])
        """,
    )

    result = project.pytester.runpytest("-s")

    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*STATUS=503 KIND=server_error ATTEMPTS=1",
            "*ModelAPIError: sim-stable: HTTP 503 *(gave up after 1 attempt)*",
        ]
    )
    assert _statuses(project) == [503, 429]
    assert _recorded_attempts(project.verdict()) == (2, 1.0)
