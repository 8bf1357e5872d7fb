"""The seam between routing and whatever moves a route: arms, route state and its backend.

A :class:`StateBackend` answers "what is this route's state now" on every call. The default,
:class:`StaticState`, is the ``routes:`` section as loaded. The canary monitor (which evaluates
``rollback:`` triggers) and the shared-state stores plug in here:

* A :class:`MonitorStore` holds what must agree across threads, processes and replicas: each
  route's :class:`RouteStatus` (rolled back, the canary step, a shared kill switch), the monitor's
  per-arm sums (:class:`~pytest_modelgate.judge.sequential.StreamSums`, which add up exactly)
  and the gateway's counters. :class:`MemoryStore` is the in-process one; stores shared by
  several processes (a file on one host, Redis across hosts) implement the same protocol.
* :class:`StoreState` is the :class:`StateBackend` over a store: the route as configured, with
  the store's status applied (read on every request, so a rollback written by one replica is
  obeyed by every replica on its next call).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from pytest_modelgate.gateway.bucketing import basis_points
from pytest_modelgate.gateway.routes import RouteSettings
from pytest_modelgate.judge.sequential import StreamSums

__all__ = [
    "ARMS",
    "ArmChoice",
    "ArmName",
    "ArmSums",
    "MemoryStore",
    "MonitorStore",
    "RouteState",
    "RouteStatus",
    "StateBackend",
    "StaticState",
    "StoreState",
    "choose_arm",
]

ArmName = Literal["stable", "candidate"]
ARMS: tuple[ArmName, ArmName] = ("stable", "candidate")


@dataclass(frozen=True)
class RouteState:
    """What a route does now: its models and shares (a monitor may change them at run time)."""

    stable: str
    candidate: str | None
    canary_bp: int
    shadow_bp: int
    # Set by a monitor's rollback: everything to stable, as a kill switch does.
    rolled_back: bool = False
    # A kill switch held in a shared store (every replica obeys it), beside env and file.
    killed: bool = False

    @classmethod
    def from_settings(cls, route: RouteSettings) -> RouteState:
        """The state a route starts in: as written in ``routes:``."""
        return cls(
            stable=route.stable,
            candidate=route.candidate,
            canary_bp=basis_points(route.canary_percent),
            shadow_bp=basis_points(route.shadow_percent),
        )


@dataclass(frozen=True)
class ArmChoice:
    """Where one request goes: the arm serving it, its model, and whether it is shadowed."""

    arm: ArmName
    model: str
    shadow_model: str | None
    killed: bool = False


class StateBackend(Protocol):
    """Where route states live; read on every request, so ``state`` must be cheap."""

    def state(self, route: str) -> RouteState:
        """The current state of ``route``."""
        ...

    def set_state(self, route: str, state: RouteState) -> None:
        """Replace the state of ``route`` (a monitor's rollback, a rollout step)."""
        ...


class StaticState:
    """The in-process backend: the states from ``routes:``, replaceable under a lock."""

    def __init__(self, routes: dict[str, RouteSettings]) -> None:
        self._lock = threading.Lock()
        self._states = {name: RouteState.from_settings(route) for name, route in routes.items()}

    def state(self, route: str) -> RouteState:
        """The current state of ``route`` (a dict read: atomic under the GIL)."""
        return self._states[route]

    def set_state(self, route: str, state: RouteState) -> None:
        """Replace the state of ``route``; the next request sees it."""
        with self._lock:
            states = dict(self._states)
            states[route] = state
            # Swap the whole dict: readers never take the lock.
            self._states = states

    def roll_back(self, route: str) -> None:
        """Send the route's whole traffic to stable (what a monitor's rollback does)."""
        with self._lock:
            states = dict(self._states)
            states[route] = replace(states[route], rolled_back=True)
            self._states = states


def choose_arm(
    state: RouteState, canary_bucket: int, shadow_bucket: int, *, killed: bool
) -> ArmChoice:
    """The arm of a request from its two buckets (see :mod:`~pytest_modelgate.gateway.bucketing`).

    A kill switch or a rollback sends it to stable and turns the shadow off.
    """
    killed = killed or state.killed
    if killed or state.rolled_back or state.candidate is None:
        return ArmChoice("stable", state.stable, None, killed=killed)
    shadow = state.candidate if shadow_bucket < state.shadow_bp else None
    if canary_bucket < state.canary_bp:
        # A canary request already goes to the candidate: mirroring it would call it twice.
        return ArmChoice("candidate", state.candidate, None)
    return ArmChoice("stable", state.stable, shadow)


# ---------------------------------------------------------------------------------------------
# Shared route status and the monitor's sums

# {arm: {metric: sums}}: the monitor's figures for one route (metrics are the monitor's names).
ArmSums = dict[ArmName, dict[str, StreamSums]]


@dataclass(frozen=True)
class RouteStatus:
    """What has happened to a route at run time, as every replica must see it.

    ``generation`` counts transitions (a rollback, a promotion, a reset, a kill); a store
    replaces a status only when the writer saw the current generation (compare-and-set), so two
    replicas deciding at once cannot both act. ``canary_bp`` is the current canary share in
    basis points (``None``: as configured); ``step`` is the monitor's index into its steps.
    """

    generation: int = 0
    rolled_back: bool = False
    killed: bool = False
    step: int = 0
    canary_bp: int | None = None
    # Why the last transition happened (a rollback's figures), for logs and ``modelgate route``.
    reason: str | None = None
    # Unix time of the last transition.
    changed_at: float | None = None


class MonitorStore(Protocol):
    """Route status, the monitor's per-arm sums and the gateway's counters, in one place.

    Every method is atomic with respect to every other user of the same store (threads,
    processes, replicas). ``status`` is read on every request and must be cheap.
    """

    def status(self, route: str) -> RouteStatus:
        """The route's current status (a new route: ``RouteStatus()``)."""
        ...

    def observe(self, route: str, arm: ArmName, values: Mapping[str, float]) -> ArmSums:
        """Add one observation of each metric in ``values`` to ``arm`` of ``route``, atomically,
        and return the route's sums after it (both arms; the current generation's)."""
        ...

    def sums(self, route: str) -> ArmSums:
        """The route's sums now (both arms, every metric seen)."""
        ...

    def transition(
        self, route: str, expected_generation: int, new: RouteStatus, *, clear_sums: bool = False
    ) -> bool:
        """Replace the status if its generation is still ``expected_generation``.

        ``new.generation`` must be ``expected_generation + 1``. ``clear_sums`` drops the
        route's sums in the same step (a reset starts counting again). False, and nothing
        changed, when another writer moved first.
        """
        ...

    def count(self, route: str, arm: ArmName, counter: str, n: int = 1) -> None:
        """Add ``n`` to a counter of ``route``'s ``arm`` (requests, errors, fallbacks, ...)."""
        ...

    def counters(self, route: str) -> dict[ArmName, dict[str, int]]:
        """The route's counters, both arms (counters never counted are absent)."""
        ...

    def close(self) -> None:
        """Release connections or files (the store's data stays where it lives)."""
        ...


class MemoryStore:
    """The in-process :class:`MonitorStore`: one lock, dicts; nothing outlives the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: dict[str, RouteStatus] = {}
        self._sums: dict[str, ArmSums] = {}
        self._counters: dict[str, dict[ArmName, dict[str, int]]] = {}

    def status(self, route: str) -> RouteStatus:
        # A dict read of an immutable value: atomic under the GIL, no lock on the hot path.
        return self._status.get(route) or RouteStatus()

    def observe(self, route: str, arm: ArmName, values: Mapping[str, float]) -> ArmSums:
        with self._lock:
            arms = self._sums.setdefault(route, {"stable": {}, "candidate": {}})
            metrics = arms[arm]
            for metric, value in values.items():
                metrics[metric] = metrics.get(metric, StreamSums()).add(float(value))
            return {name: dict(figures) for name, figures in arms.items()}

    def sums(self, route: str) -> ArmSums:
        with self._lock:
            arms = self._sums.get(route, {"stable": {}, "candidate": {}})
            return {name: dict(figures) for name, figures in arms.items()}

    def transition(
        self, route: str, expected_generation: int, new: RouteStatus, *, clear_sums: bool = False
    ) -> bool:
        if new.generation != expected_generation + 1:
            raise ValueError(
                f"route {route!r}: a new status has generation {expected_generation + 1}, "
                f"got {new.generation}"
            )
        with self._lock:
            if self.status(route).generation != expected_generation:
                return False
            self._status[route] = new
            if clear_sums:
                self._sums.pop(route, None)
            return True

    def count(self, route: str, arm: ArmName, counter: str, n: int = 1) -> None:
        with self._lock:
            arms = self._counters.setdefault(route, {"stable": {}, "candidate": {}})
            arms[arm][counter] = arms[arm].get(counter, 0) + n

    def counters(self, route: str) -> dict[ArmName, dict[str, int]]:
        with self._lock:
            arms = self._counters.get(route, {"stable": {}, "candidate": {}})
            return {name: dict(values) for name, values in arms.items()}

    def close(self) -> None:
        """Nothing to release."""


class StoreState:
    """The :class:`StateBackend` over a :class:`MonitorStore`: ``routes:`` plus the status."""

    def __init__(self, routes: Mapping[str, RouteSettings], store: MonitorStore) -> None:
        self._base = {name: RouteState.from_settings(route) for name, route in routes.items()}
        self.store = store

    def state(self, route: str) -> RouteState:
        base = self._base[route]
        status = self.store.status(route)
        if status.generation == 0:
            return base
        canary_bp = base.canary_bp if status.canary_bp is None else status.canary_bp
        return replace(
            base, canary_bp=canary_bp, rolled_back=status.rolled_back, killed=status.killed
        )

    def set_state(self, route: str, state: RouteState) -> None:
        """Replace the route's shares through the store (a new generation, compare-and-set)."""
        while True:
            current = self.store.status(route)
            new = replace(
                current,
                generation=current.generation + 1,
                canary_bp=state.canary_bp,
                rolled_back=state.rolled_back,
                killed=state.killed,
            )
            if self.store.transition(route, current.generation, new):
                return
