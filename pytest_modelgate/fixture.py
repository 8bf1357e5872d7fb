"""The ``llm`` fixture: one measured client per test item and arm, on its cassette."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_modelgate.calls.client import LLM
    from pytest_modelgate.calls.records import CallRecord
    from pytest_modelgate.session import ArmParam
from pytest_modelgate.stash import (
    ITEM_KEY,
    MARKERS_KEY,
    METRICS_KEY,
    ON_RECORD_KEY,
    ItemCalls,
    gate_of,
)


def _on_record(config: pytest.Config) -> Callable[[CallRecord], object] | None:
    """The pytest_modelgate_call_recorded hook as a callback, or None when nobody implements it.

    Looked up once per process, at the first test (every conftest is registered by then): replay
    runs are benchmarked, and an unextended one must not pay for a hook call per attempt.
    """
    if ON_RECORD_KEY not in config.stash:
        hook = config.hook.pytest_modelgate_call_recorded
        config.stash[ON_RECORD_KEY] = (
            (lambda record: hook(record=record, config=config)) if hook.get_hookimpls() else None
        )
    return config.stash[ON_RECORD_KEY]


@pytest.fixture
def llm(request: pytest.FixtureRequest) -> Iterator[LLM]:
    """The model under test for this arm: ``llm.chat(messages, **params) -> Reply``.

    Every test that uses it runs once per arm (stable, and candidate when one is given) and
    ``--modelgate-repeat`` times per arm; every HTTP attempt it makes is measured and judged.
    Attributes: ``model``, ``arm``, ``base_url``, ``mode``. Methods: ``chat``, ``openai()`` (a real
    ``openai.OpenAI`` client whose calls are measured the same way), ``note_fallback(reason)``.
    """
    from pytest_modelgate.calls.client import LLM
    from pytest_modelgate.calls.transport import CallLog, measuring_every_client

    gate = gate_of(request.config)
    if gate is not None and gate.config_errors:
        raise pytest.UsageError(f"modelgate: {gate.config_errors[0]}")
    param: ArmParam | None = getattr(request, "param", None)
    if gate is None or param is None:
        raise pytest.UsageError(
            f"{request.node.nodeid}: the `llm` fixture must be requested as a test or fixture "
            "argument (it is parametrized by arm at collection), not via getfixturevalue()"
        )
    from pytest_modelgate.session import case_id_for

    model = gate.model_for(param.arm)
    test_id = request.node.nodeid
    log = CallLog(
        test_id=test_id,
        case_id=case_id_for(test_id, param.id),
        arm=param.arm,
        model=model.name,
        repeat=param.repeat,
        resolved=model,
    )
    mode = gate.settings.mode
    secrets = gate.secret_values()
    log.secrets = secrets
    markers = request.node.stash.get(MARKERS_KEY, None)
    log.contract = markers.contract if markers is not None else None
    log.custom_metrics = request.config.stash.get(METRICS_KEY, ())
    log.on_record = _on_record(request.config)
    client_settings = gate.settings.config.client
    client = LLM(
        model=model,
        arm=param.arm,
        api_key=gate.api_key(param.arm),
        log=log,
        max_retries=client_settings.max_retries,
        timeout_s=client_settings.timeout_s,
        deadline_s=client_settings.deadline_s,
        max_response_bytes=client_settings.max_response_bytes,
        retry_after_cap_s=client_settings.retry_after_cap_s,
        backoff_base_s=client_settings.backoff_base_s,
        # Replay must not wait: a recorded 429 or 5xx is retried at once.
        sleep=_no_sleep if mode == "replay" else time.sleep,
        mode=mode,
    )
    # The product's own httpx / httpx2 clients, measured too, are held to the same bounds.
    log.bounds = client.bounds
    state = ItemCalls(client)
    request.node.stash[ITEM_KEY] = state
    with contextlib.ExitStack() as stack:
        # Closed before the cassette: responses nobody read are recorded on close.
        stack.callback(client.close)
        if mode != "live":
            from pytest_modelgate.errors import ModelgateError

            opened: list[Any] = []
            # Registered first so that it runs after the cassette was saved.
            stack.callback(_note_opening, state, opened)
            try:
                recording = stack.enter_context(
                    _cassette(request, param, model.name, mode, secrets)
                )
            except ModelgateError as exc:  # an unreadable cassette: this test's data is lost
                state.problems.append(str(exc))
                raise
            opened += [recording, len(recording.cassette)]
            stack.callback(_note_refusals, state, recording, model.name)
        # After the cassette: clients the product builds are measured above vcrpy, as ours are.
        stack.enter_context(measuring_every_client(log))
        # Product code built on the gateway: every route answers with this arm's client.
        from pytest_modelgate.gateway.pinning import pinned_to

        stack.enter_context(pinned_to(client))
        yield client


def _note_opening(state: ItemCalls, opened: list[Any]) -> None:
    """What this test did with its cassette: which interactions it played or recorded."""
    if not opened:
        return
    recording, loaded = opened
    cassette = recording.cassette
    interactions = len(cassette)
    recorded = interactions - loaded
    played = {index for index, count in cassette.play_counts.items() if count}
    played |= set(range(interactions - recorded, interactions))
    state.cassettes.append(
        {
            "path": str(recording.path),
            "interactions": interactions,
            "played": sorted(played),
            # A test that did not pass may not have reached its later calls.
            "complete": state.call_passed,
        }
    )


def _note_refusals(state: ItemCalls, recording: Any, model: str) -> None:
    """Calls replay refused that no client reported (the product may have caught the error)."""
    if recording.refusals and not (state.missing_reported or state.client.log.problems):
        calls = ", ".join(dict.fromkeys(recording.refusals))
        state.problems.append(
            f"no recording for {len(recording.refusals)} call(s) to model {model!r} in "
            f"{recording.path} ({calls}); record with --modelgate-mode=record"
        )


def _no_sleep(seconds: float) -> None:
    """Replay's wait between retries: none."""


def _cassette(
    request: pytest.FixtureRequest, param: ArmParam, model: str, mode: str, secrets: tuple[str, ...]
) -> contextlib.AbstractContextManager[Any]:
    """The test's cassette for ``model`` (keyed by model, not arm), to open in ``mode``."""
    from pytest_modelgate.recording.cassettes import cassette_path
    from pytest_modelgate.recording.use import recorded_calls
    from pytest_modelgate.session import case_id_for

    path = cassette_path(
        request.node.path,
        case_id_for(request.node.nodeid, param.id),
        model,
        repeat=param.repeat,
        repeats=param.repeats,
    )
    return recorded_calls(path=path, mode=mode, secrets=secrets, test_id=request.node.nodeid)
