"""The seam between routing and whatever moves a route: arms, route state and its backend.

A :class:`StateBackend` answers "what is this route's state now" on every call. The default,
:class:`StaticState`, is the ``routes:`` section as loaded. The canary monitor of issue 13 (which
evaluates ``rollback:`` triggers) and shared-state backends across replicas plug in here: they
implement ``state(route)`` (cheap: called per request) and may ``set_state`` after a decision.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from pytest_modelgate.gateway.bucketing import basis_points
from pytest_modelgate.gateway.routes import RouteSettings

__all__ = ["ArmChoice", "ArmName", "RouteState", "StateBackend", "StaticState", "choose_arm"]

ArmName = Literal["stable", "candidate"]


@dataclass(frozen=True)
class RouteState:
    """What a route does now: its models and shares (a monitor may change them at run time)."""

    stable: str
    candidate: str | None
    canary_bp: int
    shadow_bp: int
    # Set by a monitor's rollback: everything to stable, as a kill switch does.
    rolled_back: bool = False

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
    if killed or state.rolled_back or state.candidate is None:
        return ArmChoice("stable", state.stable, None, killed=killed)
    shadow = state.candidate if shadow_bucket < state.shadow_bp else None
    if canary_bucket < state.canary_bp:
        # A canary request already goes to the candidate: mirroring it would call it twice.
        return ArmChoice("candidate", state.candidate, None)
    return ArmChoice("stable", state.stable, shadow)
