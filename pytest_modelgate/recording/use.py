"""One gated test's recordings: its cassette opened in the run's mode, with timing captured.

The ``llm`` fixture enters :func:`recorded_calls` around the test, so every httpx and httpx2 call
the test makes (our client, the openai SDK, a client the product builds) goes through vcrpy.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_modelgate.errors import ModelgateError

# vcrpy's record mode for each of ours.
VCR_RECORD_MODES = {"replay": "none", "record": "new_episodes", "rerecord": "all"}

RECORD_HINT = "--modelgate-mode=record"
RERECORD_HINT = "--modelgate-mode=rerecord"
# How every message about a call replay could not answer begins (the plugin counts them by it).
MISSING_PREFIX = "no recording for "
# The detail of a missing recording whose cassette file does not exist at all.
NO_CASSETTE_FILE = "the cassette file does not exist"


class MissingRecordingError(ModelgateError):
    """A call in replay mode for which the cassette holds no matching recording."""


@dataclass
class Recording:
    """One test's open cassette and the calls it refused (replay with no recording)."""

    path: Path
    cassette: Any
    # "POST http://.../chat/completions" for every call vcrpy refused, whichever client made it.
    refusals: list[str] = field(default_factory=list)


@contextlib.contextmanager
def recorded_calls(
    *, path: Path, mode: str, secrets: Iterable[str], test_id: str | None = None
) -> Iterator[Recording]:
    """Open ``path`` for the duration of one test in ``mode`` (replay, record or rerecord).

    Raises ``CassetteError`` (naming the file and saying how to re-record ``test_id``) for a
    cassette that cannot be played: corrupt, foreign, malformed, or a chat-completions
    interaction without its recorded timing. It is raised before the test runs. ``rerecord``
    starts from an empty cassette: the file is replaced by what this test records, so requests
    the test no longer makes do not linger in it.
    """
    from pytest_modelgate.recording.cassettes import (
        CassetteError,
        absent_imports_fail_fast,
        scrubber_for,
    )
    from pytest_modelgate.recording.timing import capture_timing

    secrets = tuple(secrets)
    if mode == "rerecord":
        # vcrpy's "all" mode keeps the interactions it loaded and appends to them.
        path.unlink(missing_ok=True)
    vcr = _recorder(mode, secrets)
    # Replay reaches no network: there is no exchange to time (the timings are in the cassette).
    timing = capture_timing() if mode != "replay" else contextlib.nullcontext()
    with contextlib.ExitStack() as stack:
        stack.enter_context(timing)
        try:
            with absent_imports_fail_fast():
                cassette = stack.enter_context(vcr.use_cassette(str(path)))
        except CassetteError as exc:
            which = f" ({test_id})" if test_id else ""
            raise CassetteError(
                exc.path,
                f"{exc.reason}; the file is left as it is: re-record this test{which} with "
                f"{RERECORD_HINT}, or delete the file and record it with {RECORD_HINT}",
            ) from exc
        recording = Recording(path=path, cassette=cassette)
        can_play = cassette.can_play_response_for
        scrub = scrubber_for(secrets).scrub_url

        def noting_refusals(request: Any) -> bool:
            # vcrpy asks this before refusing a call in replay: note every refusal here, so a
            # missing recording counts even when the product catches the error and carries on.
            playable = bool(can_play(request))
            if not playable and cassette.write_protected:
                recording.refusals.append(f"{request.method} {scrub(str(request.uri))}")
            return playable

        cassette.can_play_response_for = noting_refusals
        yield recording


@functools.lru_cache(maxsize=16)
def _recorder(mode: str, secrets: tuple[str, ...]) -> Any:
    """One ``vcr.VCR`` per mode and set of secrets: building one per test is wasted work.

    A ``VCR`` holds configuration only; each ``use_cassette`` makes its own cassette.
    """
    from pytest_modelgate.recording.cassettes import make_vcr
    from pytest_modelgate.recording.timing import before_record_response

    return make_vcr(
        record_mode=VCR_RECORD_MODES[mode],  # type: ignore[arg-type]
        secrets=secrets,
        # Replay records nothing, so there is no timing to store.
        extra_before_record_response=before_record_response if mode != "replay" else None,
        skip_absent_libraries=True,
        # What the gate plays must carry the latency it was recorded with.
        require_timing=True,
    )


def is_missing_recording(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is vcrpy refusing a call it has no recording for."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if name == "CannotOverwriteExistingCassetteException" or isinstance(
            current, MissingRecordingError
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def missing_recording_error(
    exc: BaseException, *, model: str, secrets: Iterable[str]
) -> MissingRecordingError:
    """A clear error for vcrpy's refusal: the model, the cassette file, what differs, the fix."""
    from pytest_modelgate.recording.cassettes import explain_mismatch, scrubber_for

    cassette = getattr(exc, "cassette", None)
    path = Path(str(getattr(cassette, "_path", "") or "?"))
    request = getattr(exc, "failed_request", None)
    secrets = tuple(secrets)
    if not path.exists():
        detail = NO_CASSETTE_FILE
    else:
        detail = "no recorded request matches this one"
        body = getattr(request, "body", None)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(body, bytes):
            with contextlib.suppress(Exception):
                explained = explain_mismatch(
                    path,
                    body,
                    method=getattr(request, "method", None),
                    url=getattr(request, "uri", None),
                    secrets=secrets,
                )
                if explained:
                    # explain_mismatch names the file too; it is already said above.
                    detail = explained.removeprefix(f"{path}: ")
    message = (
        f"{MISSING_PREFIX}this call to model {model!r} in {path}: {detail}\n"
        f"record it with {RECORD_HINT} (calls the model for what is missing)"
    )
    return MissingRecordingError(scrubber_for(secrets).scrub_text(message))
