"""What the gateway reports about each request and each model call: the seam for observers.

An :class:`Observer` given to ``Gateway(observers=[...])`` sees

* :meth:`Observer.on_model_call` after every call to a model: the arm's own call, each fallback,
  each shadow call (on the shadow worker thread). This is what telemetry records (one span and one
  duration per model call).
* :meth:`Observer.on_request` after every user request, with the arm's own call first: this is
  what the canary monitor compares between the arms (the arm's error, contract break and latency,
  whether the user needed a fallback), and what it may act on (a rollback) before the next request.

Observers run on the caller's thread, after the reply is known and before ``chat`` returns; they
must be quick. An observer that raises is logged and skipped: it never breaks user traffic.
Requests answered under pytest (a pinned arm, see :mod:`~pytest_modelgate.gateway.pinning`) are
judged by the gate and are not reported here. No event carries a key, a message or a reply text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pytest_modelgate.gateway.state import ArmName

__all__ = ["CallRole", "ModelCallEvent", "Observer", "RequestEvent"]

# primary: the arm's own model; fallback: a later model of the route's order; shadow: the
# candidate called in the background for a shadow pair.
CallRole = Literal["primary", "fallback", "shadow"]


@dataclass(frozen=True, slots=True)
class ModelCallEvent:
    """One call to one model, measured (retries included: ``attempts`` HTTP attempts)."""

    route: str
    arm: ArmName
    role: CallRole
    # The configured name (``qwen-max``), the id sent as ``model`` and the catalog provider.
    model: str
    model_id: str
    provider: str | None
    base_url: str
    # Wall clock at the start (``time.time_ns()``) and the duration measured around the call.
    started_ns: int
    duration_s: float
    stream: bool
    # From the reply; ``None`` when the call failed or the provider did not say.
    ttft_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    finish_reason: str | None = None
    response_model: str | None = None
    # How many tool calls the reply made (0: none, or the call failed).
    tool_calls: int = 0
    attempts: int = 1
    # The transport's error kind when every attempt failed (``timeout``, ``rate_limited``, ...).
    error_kind: str | None = None
    # What the route's contract found wrong with a reply (empty: none, or no contract).
    violations: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """The model replied and the reply kept the route's contract."""
        return self.error_kind is None and not self.violations


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """One user request: its arm, the arm's own call and how the user was answered."""

    route: str
    arm: ArmName
    # The arm's own model call (the first one made); later calls are fallbacks.
    primary: ModelCallEvent
    # Models tried after the primary (0: the arm's model answered).
    fallbacks: int
    # The model whose reply the user got; ``None`` when every model failed.
    served_by: str | None
    # The kill switch (environment, file or a shared store) sent the request to stable.
    killed: bool = False

    @property
    def ok(self) -> bool:
        """The user got a reply."""
        return self.served_by is not None


class Observer:
    """Receives the gateway's events; override either method (both do nothing here)."""

    def on_model_call(self, event: ModelCallEvent) -> None:
        """After every model call (primary, fallback, shadow)."""

    def on_request(self, event: RequestEvent) -> None:
        """After every user request, before ``chat`` returns."""
