"""The :class:`Gateway`: a workflow name in, a :class:`~pytest_modelgate.calls.client.Reply` out.

Per request: look the route up, check its kill switch (an environment lookup and one ``stat``),
bucket the key (:mod:`~pytest_modelgate.gateway.bucketing`), choose the arm from the route's
current state (:mod:`~pytest_modelgate.gateway.state`), call its model through the gate's own
:class:`~pytest_modelgate.calls.client.LLM` (the same measuring transport, retries, ``deadline_s``,
``max_response_bytes`` and secret scrubbing as under pytest), fall back model by model when a
call fails or breaks the route's contract, and hand a shadow job to the bounded pool.

Thread-safe: the route states are swapped whole, the clients are made once under a lock, the
counters are updated under a lock. ``achat`` runs ``chat`` on a bounded thread pool owned by the
gateway (``loop.run_in_executor`` with the caller's context), because the measuring transport is
synchronous: an asyncio server keeps its loop free and gets the same measurements.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_modelgate.calls.attempts import Attempt, CallLog
from pytest_modelgate.errors import ModelAPIError, ModelgateError
from pytest_modelgate.gateway.bucketing import BUCKETS, bucket_of
from pytest_modelgate.gateway.events import CallRole, ModelCallEvent, Observer, RequestEvent
from pytest_modelgate.gateway.pinning import PinnedClient, current_pin
from pytest_modelgate.gateway.routes import RouteContract, RouteSettings
from pytest_modelgate.gateway.shadow import ShadowLog, ShadowPool, shadow_line
from pytest_modelgate.gateway.state import (
    ArmChoice,
    ArmName,
    MemoryStore,
    MonitorStore,
    StateBackend,
    StaticState,
    StoreState,
    choose_arm,
)

if TYPE_CHECKING:
    import openai

    from pytest_modelgate.calls.catalog import Catalog
    from pytest_modelgate.calls.client import LLM, Reply
    from pytest_modelgate.calls.records import CallRecord
    from pytest_modelgate.config.settings import ModelgateConfig
    from pytest_modelgate.gateway.monitor import CanaryMonitor
    from pytest_modelgate.markers import ModelContract
    from pytest_modelgate.redaction import Redactor

__all__ = ["ContractBreakError", "Gateway", "NoRouteError"]

LOGGER_NAME = "pytest_modelgate.gateway"

_COUNTERS = (
    "requests",
    "errors",
    "contract_breaks",
    "fallbacks",
    "kill_switch_hits",
    "shadow_calls",
    "shadow_errors",
    "shadow_drops",
    "product_fallbacks",
)

# The product's own check of a reply (``chat(..., accept=...)``): True or None accepts it; False
# or a string (the reason) rejects it, and the route's next model is tried.
Accept = Callable[["Reply"], "bool | str | None"]


class NoRouteError(ModelgateError, KeyError):
    """A workflow with no entry under ``routes:``."""

    def __str__(self) -> str:
        return str(self.args[0])


class ContractBreakError(ModelgateError):
    """Every model of the route replied, and every reply broke the route's contract."""

    def __init__(self, route: str, violations: Sequence[str]) -> None:
        self.route = route
        self.violations = tuple(violations)
        super().__init__(
            f"route {route!r}: every model's reply broke the contract; last: "
            + "; ".join(self.violations)
        )


class _GatewayLog(CallLog):
    """A CallLog that keeps nothing: a server makes calls for ever.

    The gateway reads each attempt's record from the request's AttemptHandle; attempts are not
    numbered into calls here, so the retry bookkeeping is dropped with the record. Nobody judges
    these records, so no prompt or reply language is detected (``Reply.record`` has none); a
    route's ``contract:`` is checked on the reply by the gateway itself.
    """

    def __init__(self, **fields: Any) -> None:
        super().__init__(**fields)
        self.detect_languages = False

    def add(self, attempt: Attempt) -> CallRecord:
        record = super().add(attempt)
        with self._lock:
            self._records.clear()
            self._failed.clear()
        return record


@dataclass(frozen=True)
class _Outcome:
    """One request's user-facing result, as the shadow log describes it."""

    reply: Reply | None
    error_kind: str | None
    violations: tuple[str, ...]
    model: str
    # The model calls made for it, in order (only with observers).
    events: tuple[ModelCallEvent, ...] = ()


class Gateway:
    """The access layer: ``routes:`` decides which model answers a workflow.

    Build it with :meth:`from_config`; use it as a context manager or call :meth:`close`.
    ``environ`` (default ``os.environ``, read live) supplies API keys and kill switches;
    ``shadow_log`` is the JSONL file of shadow pairs (no file: pairs are counted, not written);
    ``shadow_workers`` / ``shadow_queue`` bound the shadow pool; ``async_workers`` bounds the
    threads ``achat`` runs on; ``state`` replaces the in-process route states (a custom
    backend); ``observers`` receive every request's and every model call's
    measurements (:mod:`~pytest_modelgate.gateway.events`). When a route has ``rollback:``
    triggers, or ``store`` is given, route states live in ``store`` (default: an in-process
    :class:`~pytest_modelgate.gateway.state.MemoryStore`; a shared one makes every process and
    replica agree) and :attr:`monitor`, a
    :class:`~pytest_modelgate.gateway.monitor.CanaryMonitor` with false-rollback budget
    ``monitor_alpha``, watches every request.
    """

    def __init__(
        self,
        config: ModelgateConfig,
        *,
        catalog: Catalog | None = None,
        environ: Mapping[str, str] | None = None,
        shadow_log: str | os.PathLike[str] | None = None,
        shadow_workers: int = 2,
        shadow_queue: int = 64,
        async_workers: int = 16,
        state: StateBackend | None = None,
        observers: Sequence[Observer] = (),
        store: MonitorStore | None = None,
        monitor_alpha: float = 0.01,
    ) -> None:
        from pytest_modelgate.calls.catalog import load_catalog
        from pytest_modelgate.config.settings import check_config

        self._config = config
        self._catalog = catalog if catalog is not None else load_catalog()
        check_config(config, self._catalog)
        self._environ: Mapping[str, str] = environ if environ is not None else os.environ
        self._routes: dict[str, RouteSettings] = dict(config.routes)
        self._state: StateBackend = state if state is not None else StaticState(self._routes)
        self._contracts = {
            name: _model_contract(route.contract)
            for name, route in self._routes.items()
            if route.contract is not None
        }
        self._lock = threading.Lock()
        self._clients: dict[str, LLM] = {}
        self._counters = {
            name: {arm: dict.fromkeys(_COUNTERS, 0) for arm in ("stable", "candidate")}
            for name in self._routes
        }
        self._random = random.Random()
        self._shadow_log = ShadowLog(shadow_log) if shadow_log is not None else None
        self._shadow_workers = shadow_workers
        self._shadow_queue = shadow_queue
        self._pool: ShadowPool | None = None
        # Shadow jobs queued and not started, per route: what close() counts as dropped.
        self._shadow_pending = dict.fromkeys(self._routes, 0)
        self._shadow_ended = False
        self._async_workers = async_workers
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._logger = logging.getLogger(LOGGER_NAME)
        self._observers = tuple(observers)
        self.monitor: CanaryMonitor | None = None
        self.store: MonitorStore | None = None
        self._shared_counters = False
        self._owns_store = False
        self._arm_monitor(store, state, monitor_alpha)
        if config.telemetry.opentelemetry:
            from pytest_modelgate.gateway.otel import OpenTelemetryObserver

            self._observers = (*self._observers, OpenTelemetryObserver())

    def _arm_monitor(
        self, store: MonitorStore | None, state: StateBackend | None, alpha: float
    ) -> None:
        """With rollback triggers, a ``state:`` section or a store, route states live in a store
        and a canary monitor watches every request (:mod:`~pytest_modelgate.gateway.monitor`).
        A shared store (not the in-process one) also holds the counters, summed over every
        process and replica."""
        if store is None and self._config.state is not None:
            from pytest_modelgate.gateway.stores import open_store

            config_path = self._config.path
            store = open_store(self._config.state, base=config_path.parent if config_path else None)
            self._owns_store = True
        if store is None and not any(route.rollback for route in self._routes.values()):
            return
        from pytest_modelgate.gateway.monitor import CanaryMonitor
        from pytest_modelgate.judge.common import Margins

        store = store if store is not None else MemoryStore()
        if state is None:
            self._state = StoreState(self._routes, store)
        self.store = store
        self._shared_counters = not isinstance(store, MemoryStore)
        self.monitor = CanaryMonitor(
            self._routes, store, margins=Margins.from_limits(self._config.gate), alpha=alpha
        )
        if self.monitor.routes:
            self._observers = (*self._observers, self.monitor)

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str] = "modelgate.yaml", **options: Any
    ) -> Gateway:
        """A gateway for the ``routes:`` of ``path``; every problem is a ``ConfigError``.

        ``options`` are those of :class:`Gateway`.
        """
        from pytest_modelgate.config.settings import load_config

        return cls(load_config(Path(path)), **options)

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Gateway(routes={sorted(self._routes)!r})"

    @property
    def observers(self) -> tuple[Observer, ...]:
        """Everything that sees this gateway's events: the caller's observers, then the canary
        monitor and the OpenTelemetry observer when the configuration turns them on."""
        return self._observers

    # ---------------------------------------------------------------------------------------
    # routing

    def route(self, workflow: str) -> RouteSettings:
        """The settings of ``workflow``'s route; :class:`NoRouteError` naming the known ones."""
        route = self._routes.get(workflow)
        if route is None:
            known = ", ".join(sorted(self._routes)) or "none"
            raise NoRouteError(
                f"{self._config.label}: routes: no route for workflow {workflow!r} "
                f"(routes: {known})"
            )
        return route

    def killed(self, workflow: str) -> bool:
        """Whether ``workflow``'s kill switch is on now (checked on every call)."""
        switch = self.route(workflow).kill_switch
        if switch is None:
            return False
        if switch.env is not None and self._environ.get(switch.env, "").strip():
            return True
        return switch.file is not None and os.path.exists(switch.file)

    def choose(self, workflow: str, *, key: str | None = None) -> ArmChoice:
        """Where a request of ``workflow`` with ``key`` goes now (no call is made)."""
        route = self.route(workflow)
        if route.sticky_key == "required" and key is None:
            raise ValueError(f"route {workflow!r} has sticky_key: required: pass key=...")
        if route.sticky_key == "ignored":
            key = None
        if key is None:
            canary_bucket = self._random.randrange(BUCKETS)
            shadow_bucket = self._random.randrange(BUCKETS)
        else:
            canary_bucket = bucket_of(workflow, key)
            shadow_bucket = bucket_of(workflow, key, salt="shadow")
        killed = self.killed(workflow)
        return choose_arm(self._state.state(workflow), canary_bucket, shadow_bucket, killed=killed)

    # ---------------------------------------------------------------------------------------
    # calls

    def chat(
        self,
        workflow: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        key: str | None = None,
        accept: Accept | None = None,
        **params: Any,
    ) -> Reply:
        """Answer one chat request of ``workflow``; the same ``Reply`` as the ``llm`` fixture.

        ``key`` (a user or session id) keeps the request on the same arm across processes; it
        is never logged, counted or written. ``params`` go into the body as for ``llm.chat``.
        A failed call or a contract break moves to the next model: the candidate to stable,
        then ``fallback`` in order. The last failure is raised when every model failed.
        ``accept`` is the product's own check of a reply (a parse, a business rule): returning
        False or a reason string rejects it like a contract break, so the next model answers
        (counted in ``contract_breaks`` and ``fallbacks``). Under a pytest pin there is one
        model: a rejected reply raises ``ContractBreakError``.
        """
        if self._closed:
            raise RuntimeError("this Gateway is closed")
        pin = current_pin()
        if pin is not None:
            # Under the gate: the test's arm answers, recorded and judged (gateway/pinning.py).
            self.route(workflow)
            self._count(workflow, _arm_of(pin), "requests")
            pinned = pin.chat(messages, **params)
            rejected = _rejection(accept, pinned)
            if rejected:
                raise ContractBreakError(workflow, rejected)
            return pinned
        choice = self.choose(workflow, key=key)
        self._count(workflow, choice.arm, "requests")
        if choice.killed:
            self._count(workflow, "stable", "kill_switch_hits")
        outcome, reply, failure = self._serve(workflow, choice, messages, params, accept)
        if self._observers and outcome.events:
            self._notify_request(
                RequestEvent(
                    route=workflow,
                    arm=choice.arm,
                    primary=outcome.events[0],
                    fallbacks=len(outcome.events) - 1,
                    served_by=outcome.model if reply is not None else None,
                    killed=choice.killed,
                )
            )
        if choice.shadow_model is not None:
            self._shadow(workflow, choice.shadow_model, messages, params, outcome)
        if reply is not None:
            return reply
        assert failure is not None
        raise failure

    async def achat(
        self,
        workflow: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        key: str | None = None,
        accept: Accept | None = None,
        **params: Any,
    ) -> Reply:
        """``chat`` for asyncio: runs on the gateway's bounded thread pool, the loop stays free."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        call = functools.partial(
            context.run, self.chat, workflow, messages, key=key, accept=accept, **params
        )
        return await loop.run_in_executor(self._async_pool(), call)

    def openai(self, workflow: str, *, key: str | None = None) -> openai.OpenAI:
        """An ``openai.OpenAI`` client whose every request the route decides
        (:mod:`~pytest_modelgate.gateway.sdkroute`).

        Each request chooses its arm then (``key``, canary share, kill switch, rollback), goes
        to that arm's model whatever ``model=`` the code passes, measured, retried and bounded
        like ``chat``, and falls back to the route's next model on a transport error, a 429 or
        a 5xx. The contract check and the shadow call are ``chat``'s only.
        """
        pin = current_pin()
        if pin is not None:
            self.route(workflow)
            self._count(workflow, _arm_of(pin), "requests")
            sdk: openai.OpenAI = pin.openai(pin_model=True)
            return sdk
        from pytest_modelgate.gateway.sdkroute import routed_openai

        self.route(workflow)
        routed: openai.OpenAI = routed_openai(
            self,
            workflow,
            key,
            max_retries=self._config.client.max_retries,
            timeout_s=self._config.client.timeout_s,
        )
        return routed

    def _model_order(self, workflow: str, choice: ArmChoice) -> list[str]:
        """The models that may answer a request, in order: the arm's, stable, ``fallback``."""
        route = self._routes[workflow]
        order = [choice.model]
        if choice.arm == "candidate":
            order.append(route.stable)
        order += list(route.fallback)
        return order

    def _serve(
        self,
        workflow: str,
        choice: ArmChoice,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        accept: Accept | None = None,
    ) -> tuple[_Outcome, Reply | None, BaseException | None]:
        order = self._model_order(workflow, choice)
        failure: BaseException | None = None
        last = _Outcome(None, None, (), choice.model)
        events: list[ModelCallEvent] = []
        for index, model in enumerate(order):
            if index:
                self._count(workflow, choice.arm, "fallbacks")
                self._log(logging.WARNING, f"route {workflow}: falling back to {model}")
            role: CallRole = "fallback" if index else "primary"
            reply, error_kind, violations, failure = self._call(
                workflow,
                model,
                messages,
                params,
                arm=choice.arm,
                role=role,
                events=events,
                accept=accept,
            )
            last = _Outcome(reply, error_kind, violations, model, tuple(events))
            if reply is not None and not violations:
                return last, reply, None
            self._count(workflow, choice.arm, "contract_breaks" if violations else "errors")
            if violations:
                failure = ContractBreakError(workflow, violations)
        return last, None, failure

    def _call(
        self,
        workflow: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        arm: ArmName,
        role: CallRole,
        events: list[ModelCallEvent] | None = None,
        accept: Accept | None = None,
    ) -> tuple[Reply | None, str | None, tuple[str, ...], BaseException | None]:
        """One model's call and its contract check; with observers, its event is reported
        (and appended to ``events``)."""
        client = self._llm(model)
        started_ns = time.time_ns() if self._observers else 0
        started = time.perf_counter()
        reply: Reply | None = None
        error: ModelAPIError | None = None
        violations: tuple[str, ...] = ()
        try:
            reply = client.chat(messages, **params)
        except ModelAPIError as exc:
            self._log(logging.WARNING, f"route {workflow}: {model} failed: {exc.error_kind}")
            error = exc
        else:
            violations = self._violations(workflow, messages, params, reply)
            if not violations:
                violations = _rejection(accept, reply)
        if self._observers:
            event = _call_event(
                client,
                workflow,
                arm,
                role,
                params,
                started_ns,
                time.perf_counter() - started,
                reply,
                error,
                violations,
            )
            if events is not None:
                events.append(event)
            self._notify_call(event)
        if error is not None:
            return None, error.error_kind, (), error
        return reply, None, violations, None

    def _notify_call(self, event: ModelCallEvent) -> None:
        for observer in self._observers:
            try:
                observer.on_model_call(event)
            except Exception:  # an observer never breaks user traffic
                self._logger.exception("gateway observer %r failed on a model call", observer)

    def _notify_request(self, event: RequestEvent) -> None:
        for observer in self._observers:
            try:
                observer.on_request(event)
            except Exception:  # an observer never breaks user traffic
                self._logger.exception("gateway observer %r failed on a request", observer)

    def _violations(
        self,
        workflow: str,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        reply: Reply,
    ) -> tuple[str, ...]:
        contract = self._contracts.get(workflow)
        if contract is None:
            return ()
        from pytest_modelgate.calls.contracts import check_reply
        from pytest_modelgate.calls.protocol import ParsedCompletion, ParsedToolCall

        completion = ParsedCompletion(
            text=reply.text,
            tool_calls=tuple(
                ParsedToolCall(t.id, t.name, t.arguments_text) for t in reply.tool_calls
            ),
            finish_reason=reply.finish_reason,
            usage=reply.usage,
        )
        request = {"messages": list(messages), **params}
        return check_reply(contract, request, completion).violations

    # ---------------------------------------------------------------------------------------
    # shadow

    def _shadow(
        self,
        workflow: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        user: _Outcome,
    ) -> None:
        pool = self._shadow_pool()
        # The messages are copied now: the caller may reuse its list once chat returns.
        messages = [dict(m) for m in messages]
        params = dict(params)

        def job() -> None:
            with self._lock:
                if self._shadow_ended:
                    # close() already counted this job as dropped: it is not run after all.
                    return
                self._shadow_pending[workflow] -= 1
            reply, error_kind, violations, _ = self._call(
                workflow, model, messages, params, arm="candidate", role="shadow"
            )
            shadow = _Outcome(reply, error_kind, violations, model)
            self._count(workflow, "candidate", "shadow_calls")
            if reply is None:
                self._count(workflow, "candidate", "shadow_errors")
            if self._shadow_log is not None:
                self._shadow_log.append(self._pair(workflow, messages, user, shadow))

        # Counted as pending before it is queued: a worker may start it before submit returns.
        with self._lock:
            self._shadow_pending[workflow] += 1
        if not pool.submit(job):
            with self._lock:
                self._shadow_pending[workflow] -= 1
            self._count(workflow, "candidate", "shadow_drops")
            self._log(logging.WARNING, f"route {workflow}: shadow queue full, call dropped")

    def _pair(
        self,
        workflow: str,
        messages: Sequence[Mapping[str, Any]],
        user: _Outcome,
        shadow: _Outcome,
    ) -> dict[str, Any]:
        """One shadow-log line (:func:`~pytest_modelgate.gateway.shadow.shadow_line`), scrubbed."""
        entry = shadow_line(workflow, self._routes[workflow], messages, user, shadow)
        scrubbed: dict[str, Any] = self._scrubber().scrub_value(entry)
        return scrubbed

    # ---------------------------------------------------------------------------------------
    # counters, logs, clients, lifetime

    def note_fallback(self, workflow: str, reason: str, *, key: str | None = None) -> None:
        """Report that the product answered ``workflow`` without the model (a default answer,
        a keyword rule) and why; counted as ``product_fallbacks`` on the request's arm.

        ``key`` is the request's sticky key: it names the arm on a route with a canary (required
        there). Under pytest the pin hands it to the test's ``llm.note_fallback``, so the gate
        counts it in the arm's fallback rate. ``reason`` is logged (scrubbed), never counted.
        """
        route = self.route(workflow)
        pin = current_pin()
        if pin is not None:
            self._count(workflow, _arm_of(pin), "product_fallbacks")
            pin.note_fallback(reason)
            return
        if key is None and route.candidate is not None and self._state.state(workflow).canary_bp:
            raise ValueError(
                f"route {workflow!r} has a canary: note_fallback(..., key=) needs the request's "
                "key to know which arm fell back"
            )
        arm = self.choose(workflow, key=key).arm if key is not None else "stable"
        self._count(workflow, arm, "product_fallbacks")
        self._log(logging.WARNING, f"route {workflow}: product fallback on {arm}: {reason}")

    def counters(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{route: {arm: {counter: n}}}``: requests, errors, contract_breaks, fallbacks,
        kill_switch_hits (on stable), shadow_calls, shadow_errors, shadow_drops (on candidate),
        product_fallbacks (``note_fallback``).

        No key and no text ever appear here. A copy: safe to keep and serialise. With a shared
        store (``state:`` file or redis) these are the sums over every process using it.
        """
        if self._shared_counters and self.store is not None:
            store = self.store
            return {
                route: {
                    arm: {**dict.fromkeys(_COUNTERS, 0), **values}
                    for arm, values in store.counters(route).items()
                }
                for route in self._routes
            }
        with self._lock:
            return {
                route: {arm: dict(values) for arm, values in arms.items()}
                for route, arms in self._counters.items()
            }

    def _count(self, workflow: str, arm: ArmName, counter: str) -> None:
        if self._shared_counters and self.store is not None:
            self.store.count(workflow, arm, counter)
            return
        with self._lock:
            self._counters[workflow][arm][counter] += 1

    def _log(self, level: int, message: str) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, self._scrubber().scrub_text(message))

    def _scrubber(self) -> Redactor:
        from pytest_modelgate.redaction import redactor_for

        with self._lock:
            secrets = tuple(sorted(c._api_key for c in self._clients.values() if c._api_key))
        # redactor_for caches by the secrets: the same Redactor while the clients stay the same.
        return redactor_for(secrets)

    def _llm(self, model: str) -> LLM:
        client = self._clients.get(model)
        if client is not None:
            return client
        from pytest_modelgate.calls.client import LLM
        from pytest_modelgate.config.settings import require_api_key, resolve_model

        with self._lock:
            client = self._clients.get(model)
            if client is None:
                resolved = resolve_model(model, self._config, self._catalog)
                api_key = require_api_key(resolved, self._environ)
                log = _GatewayLog(
                    test_id="gateway",
                    case_id="gateway",
                    arm="stable",
                    model=resolved.name,
                    resolved=resolved,
                )
                log.secrets = (api_key,) if api_key else ()
                settings = self._config.client
                client = LLM(
                    model=resolved,
                    arm="stable",
                    api_key=api_key,
                    log=log,
                    max_retries=settings.max_retries,
                    timeout_s=settings.timeout_s,
                    deadline_s=settings.deadline_s,
                    max_response_bytes=settings.max_response_bytes,
                    retry_after_cap_s=settings.retry_after_cap_s,
                    backoff_base_s=settings.backoff_base_s,
                )
                self._clients[model] = client
            return client

    def _shadow_pool(self) -> ShadowPool:
        with self._lock:
            if self._pool is None:
                self._pool = ShadowPool(workers=self._shadow_workers, queue_size=self._shadow_queue)
            return self._pool

    def _async_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._async_workers, thread_name_prefix="modelgate-achat"
                )
            return self._executor

    def close(self, *, timeout_s: float = 5.0, cancel_shadow: bool = False) -> int:
        """Drain (or cancel) the shadow pool within ``timeout_s``, then close every client.

        Returns the number of shadow jobs that did not run (also counted as shadow drops of
        their route; a job still queued when the wait ends is then never run).
        """
        with self._lock:
            if self._closed:
                return 0
            self._closed = True
            pool, executor = self._pool, self._executor
        started = time.monotonic()
        not_run = pool.close(timeout_s=timeout_s, cancel=cancel_shadow) if pool else 0
        with self._lock:
            self._shadow_ended = True
            dropped = {w: n for w, n in self._shadow_pending.items() if n}
            self._shadow_pending = dict.fromkeys(self._shadow_pending, 0)
        for workflow, pending in dropped.items():
            if self._shared_counters and self.store is not None:
                self.store.count(workflow, "candidate", "shadow_drops", pending)
            else:
                with self._lock:
                    self._counters[workflow]["candidate"]["shadow_drops"] += pending
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if self._shadow_log is not None:
            self._shadow_log.close()
        for client in list(self._clients.values()):
            client.close()
        if self._owns_store and self.store is not None:
            self.store.close()
        if not_run:
            self._log(
                logging.WARNING,
                f"gateway closed after {time.monotonic() - started:.1f} s: "
                f"{not_run} shadow call(s) not made",
            )
        return not_run


def _call_event(
    client: LLM,
    workflow: str,
    arm: ArmName,
    role: CallRole,
    params: Mapping[str, Any],
    started_ns: int,
    duration_s: float,
    reply: Reply | None,
    error: ModelAPIError | None,
    violations: tuple[str, ...],
) -> ModelCallEvent:
    resolved = client.resolved
    event = ModelCallEvent(
        route=workflow,
        arm=arm,
        role=role,
        model=resolved.name,
        model_id=resolved.model_id,
        provider=resolved.provider,
        base_url=resolved.base_url,
        started_ns=started_ns,
        duration_s=duration_s,
        stream=bool(params.get("stream")),
        error_kind=error.error_kind if error is not None else None,
        attempts=error.attempts if error is not None else 1,
        violations=violations,
    )
    if reply is None:
        return event
    return replace(
        event,
        ttft_s=reply.ttft_ms / 1000.0 if reply.ttft_ms is not None else None,
        input_tokens=reply.usage.prompt_tokens,
        output_tokens=reply.usage.completion_tokens,
        cost_usd=reply.cost_usd,
        finish_reason=reply.finish_reason,
        response_model=reply.model or None,
        attempts=reply.attempts,
        tool_calls=len(reply.tool_calls),
    )


def _rejection(accept: Accept | None, reply: Reply) -> tuple[str, ...]:
    """The product's reason for rejecting ``reply`` (empty: accepted, or no check)."""
    if accept is None:
        return ()
    verdict = accept(reply)
    if verdict is None or verdict is True:
        return ()
    if verdict is False:
        return ("rejected by the product's accept check",)
    return (f"rejected by the product's accept check: {verdict}",)


def _arm_of(pin: PinnedClient) -> ArmName:
    return "candidate" if pin.arm == "candidate" else "stable"


def _model_contract(contract: RouteContract) -> ModelContract:
    from pytest_modelgate.markers import ModelContract

    return ModelContract(
        json=contract.json_ or contract.schema_ is not None,
        schema=contract.schema_,
        schema_source="inline" if contract.schema_ is not None else None,
        tools=contract.tools,
        language=contract.language,
        max_output_tokens=contract.max_output_tokens,
    )
