"""One gated test's recordings: its cassette opened in the run's mode, with timing captured.

The ``llm`` fixture enters :func:`recorded_calls` around the test, so every httpx and httpx2 call
the test makes (our client, the openai SDK, a client the product builds) goes through vcrpy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pytest_modelgate.errors import ModelgateError

# vcrpy's record mode for each of ours.
VCR_RECORD_MODES = {"replay": "none", "record": "new_episodes", "rerecord": "all"}

RECORD_HINT = "--modelgate-mode=record"


class MissingRecordingError(ModelgateError):
    """A call in replay mode for which the cassette holds no matching recording."""


@contextlib.contextmanager
def recorded_calls(*, path: Path, mode: str, secrets: Iterable[str]) -> Iterator[Any]:
    """Open ``path`` for the duration of one test in ``mode`` (replay, record or rerecord).

    Yields vcrpy's cassette. Raises ``CassetteError`` (naming the file) for a corrupt or foreign
    cassette, before the test runs.
    """
    from pytest_modelgate.recording.cassettes import make_vcr
    from pytest_modelgate.recording.timing import before_record_response, capture_timing

    record_mode = VCR_RECORD_MODES[mode]
    vcr = make_vcr(
        record_mode=record_mode,  # type: ignore[arg-type]
        secrets=tuple(secrets),
        extra_before_record_response=before_record_response,
    )
    with capture_timing(), vcr.use_cassette(str(path)) as cassette:
        yield cassette


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
    from pytest_modelgate.recording.cassettes import Scrubber, explain_mismatch

    cassette = getattr(exc, "cassette", None)
    path = Path(str(getattr(cassette, "_path", "") or "?"))
    request = getattr(exc, "failed_request", None)
    secrets = tuple(secrets)
    if not path.exists():
        detail = "the cassette file does not exist"
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
        f"no recording for this call to model {model!r} in {path}: {detail}\n"
        f"record it with {RECORD_HINT} (calls the model for what is missing)"
    )
    return MissingRecordingError(Scrubber(secrets).scrub_text(message))
