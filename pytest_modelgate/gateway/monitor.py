"""The canary monitor: a route's ``rollback:`` triggers, checked after every request, and
promotion through its ``steps:``, with anytime-valid statistics.

A fixed threshold checked again and again (Flagger's ``threshold`` every interval, Argo's
``failureLimit``) fires on an A/A canary sooner or later: each look spends error budget again.
The monitor compares the candidate with stable *on the same route* through confidence sequences
(:mod:`~pytest_modelgate.judge.sequential`), whose error budget ``alpha`` covers every look
together, so it may look after every request. The budget is split evenly over the route's
triggers (and, for a quantile ratio, over the two arms' sequences).

What a trigger compares (``{metric, op, threshold, unit, margin}``, the verdict's form):

* with a margin (the trigger's ``margin``, else the ``gate:`` margin of the metric), the
  candidate against live stable: a rate fires when the sequence for ``candidate - stable`` lies
  wholly beyond the margin (``error_rate > +margin``; a validity ``< -margin``); a latency
  quantile when the candidate's lower bound exceeds ``margin`` times stable's upper bound; the
  cost per call when the log ratio's lower bound exceeds ``log(margin)``;
* without one, the candidate's own figure against ``threshold``, e.g. its error rate's lower
  bound above 1.5%.

Nothing is judged before ``min_requests`` candidate observations of the metric. A firing trigger
rolls the route back (a compare-and-set :meth:`MonitorStore.transition`, so replicas deciding at
once act once): every request goes to stable until :meth:`CanaryMonitor.reset`. A promotion to
the next step needs the step's ``min_requests`` candidate requests and non-inferiority shown on
every trigger (each sequence wholly on the good side of its limit); it clears the sums, so a
step starts a new sequence.

What is observed per request is the arm's own model call (not the fallbacks): ``error`` (every
attempt failed), ``fallback`` (the user needed another model), and for a reply ``json_valid`` /
``schema_valid`` (the route's contract), the latency and time to first token (in histogram
buckets 2% wide, which is what a quantile sequence reads and what a shared store can add up),
the cost, and whether a reply's tool calls kept the contract. Metrics the gateway does not see
per request (language match, tokens) are not watched; :attr:`CanaryMonitor.unwatched` lists
them with why, and the monitor logs them once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from pytest_modelgate.gateway.bucketing import basis_points
from pytest_modelgate.gateway.events import Observer, RequestEvent
from pytest_modelgate.gateway.routes import RollbackTrigger, RouteSettings
from pytest_modelgate.gateway.state import ArmSums, MonitorStore, RouteStatus
from pytest_modelgate.judge.common import Margins
from pytest_modelgate.judge.sequential import (
    SequenceInterval,
    StreamSums,
    difference_sequence,
    log_ratio_sequence,
    mean_sequence,
    quantile_sequence,
)

__all__ = ["WATCHED_METRICS", "CanaryMonitor", "TriggerFigures", "latency_bucket"]

_LOGGER = logging.getLogger("pytest_modelgate.gateway")

# metric -> (shape, stream, quantile, the Margins field)
_Shape = Literal["rate", "quantile", "ratio"]
WATCHED_METRICS: dict[str, tuple[_Shape, str, float, str]] = {
    "error_rate": ("rate", "error", 0.0, "error_rate"),
    "fallback_rate": ("rate", "fallback", 0.0, "fallback_rate"),
    "json_validity": ("rate", "json_valid", 0.0, "json_validity"),
    "schema_validity": ("rate", "schema_valid", 0.0, "schema_validity"),
    "tool_call_accuracy": ("rate", "tool_valid", 0.0, "tool_call_accuracy"),
    "latency_p50_ms": ("quantile", "latency", 0.50, "latency_p50_ratio"),
    "latency_p95_ms": ("quantile", "latency", 0.95, "latency_p95_ratio"),
    "ttft_p95_ms": ("quantile", "ttft", 0.95, "ttft_p95_ratio"),
    "cost_per_call_usd": ("ratio", "cost", 0.0, "cost_per_call_ratio"),
}

# Latency histogram: bucket k holds [0.1 ms * 1.02^k, 0.1 ms * 1.02^(k+1)); a quantile read off it
# is rounded outwards by at most 2%.
_BUCKET_BASE_MS = 0.1
_BUCKET_GROWTH = 1.02
_LOG_GROWTH = math.log(_BUCKET_GROWTH)
_NOT_JSON = "reply is not JSON"
_NOT_SCHEMA = "reply does not match the schema"
_BAD_TOOL_CALL = 'tool call "'
_EMPTY = StreamSums()


def latency_bucket(ms: float) -> int:
    """The histogram bucket of a duration in milliseconds (0 holds everything below 0.1 ms)."""
    if not ms > _BUCKET_BASE_MS:
        return 0
    return int(math.log(ms / _BUCKET_BASE_MS) / _LOG_GROWTH)


def _bucket_edges(k: int) -> tuple[float, float]:
    low = 0.0 if k == 0 else _BUCKET_BASE_MS * _BUCKET_GROWTH**k
    return low, _BUCKET_BASE_MS * _BUCKET_GROWTH ** (k + 1)


@dataclass(frozen=True)
class TriggerFigures:
    """Where one trigger stands after a request: its sequence and what it shows."""

    metric: str
    # "relative": candidate against stable with ``limit`` the margin; "absolute": against
    # ``limit`` the trigger's threshold.
    against: Literal["relative", "absolute"]
    limit: float
    # candidate - stable (rates), candidate / stable (quantiles, cost), or the candidate's own.
    estimate: float
    lower: float
    upper: float
    candidate_n: int
    stable_n: int
    # Judged: enough candidate observations (``min_requests``) and two on stable.
    judged: bool
    fired: bool
    # Non-inferiority shown: the whole sequence on the good side of the limit.
    non_inferior: bool

    def describe(self) -> str:
        """One line with the figures, for logs and ``modelgate route status``."""
        shape = WATCHED_METRICS[self.metric][0]
        if shape == "rate" and self.against == "relative":
            figure = f"candidate - stable = {self.estimate * 100:+.2f} pts"
            interval = f"[{self.lower * 100:+.2f}, {self.upper * 100:+.2f}] pts"
            limit = f"margin {self.limit * 100:.2f} pts"
        elif shape == "rate":
            figure = f"candidate {self.estimate:.2%}"
            interval = f"[{self.lower:.2%}, {self.upper:.2%}]"
            limit = f"threshold {self.limit:.2%}"
        elif self.against == "relative":
            figure = f"candidate / stable = x{self.estimate:.3f}"
            interval = f"[x{self.lower:.3f}, x{self.upper:.3f}]"
            limit = f"margin x{self.limit:.2f}"
        else:
            figure = f"candidate {self.estimate:.4g}"
            interval = f"[{self.lower:.4g}, {self.upper:.4g}]"
            limit = f"threshold {self.limit:.4g}"
        state = "FIRED" if self.fired else "non-inferior" if self.non_inferior else "watching"
        if not self.judged:
            state = "waiting for requests"
        return (
            f"{self.metric}: {figure}, sequence {interval}, {limit} "
            f"({self.candidate_n} candidate, {self.stable_n} stable): {state}"
        )


@dataclass(frozen=True)
class _Trigger:
    metric: str
    shape: _Shape
    stream: str
    quantile: float
    op: Literal[">", "<"]
    # relative: the margin (points for a rate, a ratio otherwise); absolute: the threshold.
    relative: bool
    limit: float
    min_requests: int


@dataclass(frozen=True)
class _WatchedRoute:
    triggers: tuple[_Trigger, ...]
    streams: frozenset[str]
    steps: tuple[tuple[int, int], ...]  # (canary basis points, min requests)
    json_checked: bool
    schema_checked: bool
    # The contract checks tool calls (against its tools and the request's declarations).
    tools_checked: bool
    alpha_each: float


class CanaryMonitor(Observer):
    """Watches the canary of every route with ``rollback:`` triggers, through ``store``.

    ``alpha`` is the chance of a false rollback per route over the whole canary (every look
    included); ``t_opt`` is the number of candidate requests at which the sequences are
    tightest (decisions are fastest near it; any value keeps ``alpha``).
    """

    def __init__(
        self,
        routes: Mapping[str, RouteSettings],
        store: MonitorStore,
        *,
        margins: Margins | None = None,
        alpha: float = 0.01,
        t_opt: float = 1000.0,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
        self.store = store
        self.alpha = alpha
        self.t_opt = t_opt
        self._routes = dict(routes)
        self._margins = margins if margins is not None else Margins()
        self.unwatched: dict[str, list[str]] = {}
        # Per (route, arm, stream, quantile): the last sequence and the bucket layout it read.
        self._quantiles: dict[tuple[str, str, str, float], tuple[int, int, SequenceInterval]] = {}
        self._layouts: dict[
            tuple[str, str, str, float], tuple[int, list[tuple[float, float, str]]]
        ] = {}
        self._watched: dict[str, _WatchedRoute] = {}
        for name, route in self._routes.items():
            watched = self._watch(name, route)
            if watched is not None:
                self._watched[name] = watched
        for name, reasons in self.unwatched.items():
            _LOGGER.warning("canary monitor, route %s: not watched: %s", name, "; ".join(reasons))

    @property
    def routes(self) -> tuple[str, ...]:
        """The routes whose canary is watched."""
        return tuple(self._watched)

    def _watch(self, name: str, route: RouteSettings) -> _WatchedRoute | None:
        triggers: list[_Trigger] = []
        for index, trigger in enumerate(route.rollback):
            built = self._trigger(name, index, trigger)
            if built is not None:
                triggers.append(built)
        if route.candidate is None or not triggers:
            return None
        contract = route.contract
        return _WatchedRoute(
            triggers=tuple(triggers),
            streams=frozenset(t.stream for t in triggers) | {"error"},
            steps=tuple((basis_points(s.percent), s.min_requests) for s in route.steps),
            json_checked=contract is not None and (contract.json_ or contract.schema_ is not None),
            tools_checked=contract is not None,
            schema_checked=contract is not None and contract.schema_ is not None,
            alpha_each=self.alpha / len(triggers),
        )

    def _trigger(self, route: str, index: int, trigger: RollbackTrigger) -> _Trigger | None:
        where = f"routes.{route}.rollback[{index}]"
        known = WATCHED_METRICS.get(trigger.metric)
        if known is None:
            self.unwatched.setdefault(route, []).append(
                f"{where}: {trigger.metric} is not measured per request by the gateway"
            )
            return None
        shape, stream, quantile, margin_field = known
        margin = trigger.margin
        if margin is None:
            margin = getattr(self._margins, margin_field)
        if shape != "rate" and trigger.op != ">" and margin is not None:
            raise ValueError(f"{where}: a ratio to stable is watched with op '>' only")
        expected_op = "<" if stream in ("json_valid", "schema_valid", "tool_valid") else ">"
        if margin is not None and trigger.op != expected_op:
            raise ValueError(
                f"{where}: {trigger.metric} against stable is a rise to watch with op "
                f"{expected_op!r}, got {trigger.op!r}"
            )
        return _Trigger(
            metric=trigger.metric,
            shape=shape,
            stream=stream,
            quantile=quantile,
            op=trigger.op,
            relative=margin is not None,
            limit=float(margin) if margin is not None else trigger.threshold,
            min_requests=trigger.min_requests,
        )

    # -----------------------------------------------------------------------------------
    # after every request

    def on_request(self, event: RequestEvent) -> None:
        """Add the arm's observation, then check the triggers (and a promotion)."""
        watched = self._watched.get(event.route)
        if watched is None or event.killed:
            return
        status = self.store.status(event.route)
        if status.rolled_back or status.killed:
            return
        values = self._observation(event, watched)
        sums = self.store.observe(event.route, event.arm, values)
        self._decide(event.route, watched, status, sums)

    def _observation(self, event: RequestEvent, watched: _WatchedRoute) -> dict[str, float]:
        call = event.primary
        streams = watched.streams
        values = {"error": 0.0 if call.error_kind is None else 1.0}
        if "fallback" in streams:
            values["fallback"] = 1.0 if event.fallbacks else 0.0
        if call.error_kind is not None:
            return values
        if watched.json_checked and "json_valid" in streams:
            broken = any(v.startswith(_NOT_JSON) for v in call.violations)
            values["json_valid"] = 0.0 if broken else 1.0
        if watched.schema_checked and "schema_valid" in streams:
            broken = any(v.startswith((_NOT_JSON, _NOT_SCHEMA)) for v in call.violations)
            values["schema_valid"] = 0.0 if broken else 1.0
        # A quantile stream is its histogram ("latency#k": one count per observation in bucket
        # k) plus the plain stream, whose count says whether the histogram changed.
        if watched.tools_checked and "tool_valid" in streams and call.tool_calls:
            broken = any(v.startswith(_BAD_TOOL_CALL) for v in call.violations)
            values["tool_valid"] = 0.0 if broken else 1.0
        if "latency" in streams:
            ms = call.duration_s * 1000.0
            values["latency"] = ms
            values[f"latency#{latency_bucket(ms)}"] = 1.0
        if "ttft" in streams and call.ttft_s is not None:
            ms = call.ttft_s * 1000.0
            values["ttft"] = ms
            values[f"ttft#{latency_bucket(ms)}"] = 1.0
        if "cost" in streams and call.cost_usd is not None:
            values["cost"] = call.cost_usd
        return values

    def _decide(
        self, route: str, watched: _WatchedRoute, status: RouteStatus, sums: ArmSums
    ) -> None:
        figures = [
            self._figures(route, trigger, watched, status, sums) for trigger in watched.triggers
        ]
        fired = [f for f in figures if f.fired]
        if fired:
            reason = "rolled back: " + "; ".join(f.describe() for f in fired)
            new = replace(
                status,
                generation=status.generation + 1,
                rolled_back=True,
                reason=reason,
                changed_at=time.time(),
            )
            if self.store.transition(route, status.generation, new):
                _LOGGER.warning("canary monitor, route %s: %s", route, reason)
            return
        if not watched.steps or status.step + 1 >= len(watched.steps):
            return
        step_requests = watched.steps[status.step][1]
        requests = sums["candidate"].get("error", StreamSums()).n
        if requests >= step_requests and all(f.judged and f.non_inferior for f in figures):
            next_bp = watched.steps[status.step + 1][0]
            reason = (
                f"promoted to {next_bp / 100:g}% after {requests} candidate requests: "
                + "; ".join(f.describe() for f in figures)
            )
            new = replace(
                status,
                generation=status.generation + 1,
                step=status.step + 1,
                canary_bp=next_bp,
                reason=reason,
                changed_at=time.time(),
            )
            if self.store.transition(route, status.generation, new, clear_sums=True):
                _LOGGER.info("canary monitor, route %s: %s", route, reason)

    def _quantile(
        self,
        key: tuple[str, int, str, float],
        arm: str,
        metrics: Mapping[str, StreamSums],
        alpha: float,
        t_opt: float,
    ) -> SequenceInterval:
        """One arm's quantile sequence, recomputed only when that arm's stream grew.

        A request adds to one arm, so each request rescans one histogram, not two. Both caches
        are keyed by what they depend on (the generation, the stream's count, the bucket names
        present); a race between threads only computes a figure twice.
        """
        route, generation, stream, quantile = key
        n = metrics.get(stream, _EMPTY).n
        cache_key = (route, arm, stream, quantile)
        cached = self._quantiles.get(cache_key)
        if cached is not None and cached[0] == generation and cached[1] == n:
            return cached[2]
        layout = self._layouts.get(cache_key)
        if layout is None or layout[0] != len(metrics):
            prefix = stream + "#"
            names = sorted(
                (int(name[len(prefix) :]), name) for name in metrics if name.startswith(prefix)
            )
            layout = (len(metrics), [(*_bucket_edges(k), name) for k, name in names])
            self._layouts[cache_key] = layout
        histogram = [(low, high, metrics[name].n) for low, high, name in layout[1]]
        interval = quantile_sequence(histogram, quantile, alpha=alpha, t_opt=t_opt)
        self._quantiles[cache_key] = (generation, n, interval)
        return interval

    def _figures(
        self,
        route: str,
        trigger: _Trigger,
        watched: _WatchedRoute,
        status: RouteStatus,
        sums: ArmSums,
    ) -> TriggerFigures:
        candidate, stable = sums["candidate"], sums["stable"]
        alpha = watched.alpha_each
        share = self._share_of(watched, status)
        if trigger.shape == "quantile":
            c_opt = max(self.t_opt, trigger.min_requests)
            key = (route, status.generation, trigger.stream, trigger.quantile)
            if trigger.relative:
                c_seq = self._quantile(key, "candidate", candidate, alpha / 2, c_opt)
                s_opt = c_opt * (1 - share) / share
                s_seq = self._quantile(key, "stable", stable, alpha / 2, s_opt)
                interval = _quantile_ratio(c_seq, s_seq)
            else:
                c_seq = self._quantile(key, "candidate", candidate, alpha, c_opt)
                s_seq = SequenceInterval(math.nan, -math.inf, math.inf, 0)
                interval = c_seq
            c_n, s_n = c_seq.n, s_seq.n
        else:
            c_sums = candidate.get(trigger.stream, StreamSums())
            s_sums = stable.get(trigger.stream, StreamSums())
            c_n, s_n = c_sums.n, s_sums.n
            interval = self._stream_interval(trigger, c_sums, s_sums, alpha, share)
        judged = c_n >= trigger.min_requests and (s_n >= 2 or not trigger.relative)
        fired, non_inferior = _verdict_of(trigger, interval)
        return TriggerFigures(
            metric=trigger.metric,
            against="relative" if trigger.relative else "absolute",
            limit=trigger.limit,
            estimate=interval.estimate,
            lower=interval.lower,
            upper=interval.upper,
            candidate_n=c_n,
            stable_n=s_n,
            judged=judged,
            fired=judged and fired,
            non_inferior=judged and non_inferior,
        )

    def _share_of(self, watched: _WatchedRoute, status: RouteStatus) -> float:
        if status.canary_bp is not None:
            bp = status.canary_bp
        elif watched.steps:
            bp = watched.steps[min(status.step, len(watched.steps) - 1)][0]
        else:
            bp = 500
        return min(max(bp / 10_000, 0.001), 0.999)

    def _stream_interval(
        self,
        trigger: _Trigger,
        c_sums: StreamSums,
        s_sums: StreamSums,
        alpha: float,
        share: float,
    ) -> SequenceInterval:
        c_opt = max(self.t_opt, trigger.min_requests)
        if not trigger.relative:
            return mean_sequence(c_sums, alpha=alpha, t_opt=c_opt)
        # Two unpaired streams: the sequence runs over every request of both arms.
        total_opt = c_opt / share
        if trigger.shape == "rate":
            # Neither arm may claim certainty from a run without a single failure: the floor is
            # the pooled rate's Bernoulli variance (the variance both arms share under A/A).
            pooled = (c_sums.total + s_sums.total + 1.0) / (c_sums.n + s_sums.n + 2.0)
            return difference_sequence(
                c_sums,
                s_sums,
                alpha=alpha,
                t_opt=total_opt,
                variance_floor=pooled * (1.0 - pooled),
            )
        log_seq = log_ratio_sequence(c_sums, s_sums, alpha=alpha, t_opt=total_opt)
        return SequenceInterval(
            math.exp(log_seq.estimate) if math.isfinite(log_seq.estimate) else math.nan,
            math.exp(log_seq.lower) if log_seq.lower > -math.inf else 0.0,
            math.exp(log_seq.upper) if log_seq.upper < math.inf else math.inf,
            log_seq.n,
        )

    # -----------------------------------------------------------------------------------
    # for people and the CLI

    def figures(self, route: str) -> list[TriggerFigures]:
        """Every trigger of ``route`` as it stands now (empty: the route is not watched)."""
        watched = self._watched.get(route)
        if watched is None:
            return []
        status = self.store.status(route)
        sums = self.store.sums(route)
        return [
            self._figures(route, trigger, watched, status, sums) for trigger in watched.triggers
        ]

    def reset(self, route: str, *, reason: str = "reset by hand") -> RouteStatus:
        """End a rollback (or a promotion path): the canary starts again at its first step,
        with no sums. Returns the new status."""
        return reset_route(self.store, route, reason=reason)


def reset_route(store: MonitorStore, route: str, *, reason: str = "reset by hand") -> RouteStatus:
    """Back to the route as configured (first step, not rolled back, not killed), sums cleared."""
    while True:
        current = store.status(route)
        new = RouteStatus(generation=current.generation + 1, reason=reason, changed_at=time.time())
        if store.transition(route, current.generation, new, clear_sums=True):
            return new


def _quantile_ratio(candidate: SequenceInterval, stable: SequenceInterval) -> SequenceInterval:
    """``q_candidate / q_stable`` bounds from the two arms' sequences (each at half the budget)."""
    estimate = (
        candidate.estimate / stable.estimate
        if stable.estimate and math.isfinite(stable.estimate)
        else math.nan
    )
    lower = (
        candidate.lower / stable.upper
        if candidate.lower > 0 and math.isfinite(stable.upper) and stable.upper > 0
        else 0.0
    )
    upper = (
        candidate.upper / stable.lower
        if math.isfinite(candidate.upper) and stable.lower > 0
        else math.inf
    )
    return SequenceInterval(estimate, lower, upper, candidate.n + stable.n)


def _verdict_of(trigger: _Trigger, interval: SequenceInterval) -> tuple[bool, bool]:
    """(fired, non-inferior) for an interval of the trigger's comparison."""
    limit = trigger.limit
    if trigger.relative and trigger.shape == "rate":
        if trigger.op == ">":  # a rise of an error or fallback rate
            return interval.lower > limit, interval.upper < limit
        return interval.upper < -limit, interval.lower > -limit  # a drop of a validity
    if trigger.op == ">":
        return interval.lower > limit, interval.upper < limit
    return interval.upper < limit, interval.lower > limit
