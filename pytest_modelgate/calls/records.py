"""What the gate measures: one record per HTTP attempt and one per test item per arm.

These models are the contract between the measuring layer (client and transports), the pytest glue
and the judge. They serialise to plain JSON-compatible dicts (``model_dump(mode="json")``) so that
under pytest-xdist they ride on test reports from the workers to the controller unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Arm = Literal["stable", "candidate"]
ARMS: tuple[Arm, Arm] = ("stable", "candidate")

Outcome = Literal["passed", "failed", "skipped", "error"]

# Error kinds an attempt can end with. ``None`` on a CallRecord means the attempt succeeded.
ErrorKind = Literal[
    "rate_limit",  # 429 that may be retried
    "quota",  # 429/402/403 that means the account is out of money or quota: never retried
    "server_error",  # 5xx
    "timeout",
    "connection",
    "stream_cut",  # the SSE stream ended or broke before [DONE] / a finish_reason
    "bad_request",  # 400, 422
    "auth",  # 401
    "permission",  # 403 that is not a quota error
    "not_found",  # 404
    "provider_error",  # HTTP 200 whose body reports an error (e.g. MiniMax base_resp)
    "invalid_response",  # a body that is not an OpenAI chat completion
    "response_too_large",  # a body beyond client.max_response_bytes: reading stopped there
    "http_error",  # any other non-2xx status
]

# Where an attempt's latency figures come from: measured as the call happened, or taken from the
# recording it was replayed from (measured when it was recorded).
TimingSource = Literal["live", "recorded"]

RETRYABLE_ERROR_KINDS: frozenset[str] = frozenset(
    {"rate_limit", "server_error", "timeout", "connection", "stream_cut"}
)


class _Frozen(BaseModel):
    """A frozen record. Records with the same fields given share one fields-set object.

    pydantic keeps on every instance the set of the field names it was given (about 700 bytes
    for a call): two fifths of a record's memory, and a suite's records hold a handful of
    distinct sets. Nothing changes a frozen model's set in place (``model_copy`` copies it
    before adding the updated names), so one set per distinct combination serves them all.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    def model_post_init(self, context: Any, /) -> None:
        given = self.__pydantic_fields_set__
        shared = _FIELDS_SETS.get(key := (type(self), frozenset(given)))
        if shared is None:
            if len(_FIELDS_SETS) >= _MAX_FIELDS_SETS:
                return  # an unusual mix of fields: keep its own set
            shared = _FIELDS_SETS[key] = given
        object.__setattr__(self, "__pydantic_fields_set__", shared)


# The shared fields-sets by model and names; bounded, each entry a few hundred bytes. The sets
# hold field names only (no record data), so sharing them across runs shares nothing of a run.
_FIELDS_SETS: dict[tuple[type[BaseModel], frozenset[str]], set[str]] = {}
_MAX_FIELDS_SETS = 4096


class Usage(_Frozen):
    """Token usage as the provider reported it; ``None`` where the provider did not say."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Prompt tokens served from the provider's cache (billed at the cached-input price).
    cached_tokens: int | None = None
    # Reasoning tokens are part of completion_tokens (billed as output), reported for visibility.
    reasoning_tokens: int | None = None
    total_tokens: int | None = None


class Budgets(_Frozen):
    """Per-workflow limits from markers (``latency_budget``, ``cost_budget``, ``quality``).

    Absolute budgets bind the candidate; ``*_max_ratio`` bound candidate/stable; ``max_*_drop``
    are rates as fractions (0.02 = 2 points). ``None``: the marker did not set it (the gate's
    defaults apply to the ratios and drops).
    """

    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    ttft_p95_ms: float | None = None
    latency_max_ratio: float | None = None
    cost_usd_per_call: float | None = None
    cost_usd_per_test: float | None = None
    cost_max_ratio: float | None = None
    min_pass_rate: float | None = None
    max_pass_rate_drop: float | None = None


class CallRecord(_Frozen):
    """One HTTP attempt to a chat-completions endpoint made inside a gated test."""

    test_id: str
    case_id: str
    arm: Arm
    model: str
    repeat: int = 0
    # Logical call number within the test (0-based); retries of one call share it.
    call_index: int
    # 1-based attempt number within the logical call.
    attempt: int = 1
    # Which client sent it: our own ``llm.chat`` or an ``llm.openai()`` client.
    client: Literal["modelgate", "openai", "other"] = "modelgate"
    endpoint: str = ""
    started_at: float = Field(description="Wall-clock start, seconds since the epoch.")
    latency_ms: float | None = None
    ttft_ms: float | None = None
    status: int | None = None
    error_kind: ErrorKind | None = None
    error_message: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    finish_reason: str | None = None
    # Whether the reply's text content parsed as JSON; None when there was no text content.
    json_valid: bool | None = None
    tool_calls: tuple[str, ...] = ()
    streamed: bool = False
    # "recorded": latency_ms and ttft_ms were measured when the replayed recording was made.
    timing: TimingSource = "live"
    # Language of the last user message of the request and of the reply's text (ISO 639-1).
    prompt_language: str | None = None
    reply_language: str | None = None
    # Contract checks applied to the reply ("json", "schema", "tools", "language",
    # "max_output_tokens") and their results (``@pytest.mark.model_contract``); None: not checked.
    checks: tuple[str, ...] = ()
    schema_valid: bool | None = None
    tool_calls_valid: bool | None = None
    language_match: bool | None = None
    output_tokens_ok: bool | None = None
    # One short sentence per failed contract check, quoting the reply.
    violations: tuple[str, ...] = ()
    # Values of the metrics plugins add (``pytest_modelgate_metrics``), by metric name, worked
    # out when the attempt was recorded: a rate's is 1.0 or 0.0. A metric that does not apply
    # to the call (or a failed attempt) has no entry.
    extra: dict[str, float] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the attempt returned a usable completion."""
        return self.error_kind is None


class TestRecord(_Frozen):
    """One test item on one arm (and repeat): its outcome and every attempt it made."""

    __test__ = False  # not a pytest test class

    test_id: str
    case_id: str
    # The workflow this case belongs to: the test function's name unless a marker says otherwise.
    workflow: str
    arm: Arm
    model: str
    repeat: int = 0
    outcome: Outcome
    duration_s: float = 0.0
    calls: tuple[CallRecord, ...] = ()
    fallbacks: tuple[str, ...] = ()
    # Short failure text (the first line of the error), for reports.
    message: str | None = None
    # Language of the case's prompt (the last user message of its first call), for slicing.
    language: str | None = None
    # Numeric quality scores the test recorded with ``llm.score(name, value)`` (in call order).
    scores: tuple[tuple[str, float], ...] = ()
    # What the workflow's markers require (budgets, quality); None when no marker says anything.
    budgets: Budgets | None = None


class ModelIdentity(_Frozen):
    """Which model played an arm, as written in the verdict."""

    model: str
    provider: str | None = None
    base_url: str | None = None
