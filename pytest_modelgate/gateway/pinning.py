"""Pinning every route to one client: how the gate tests product code built on the gateway.

While :func:`pinned_to` is active (the ``llm`` fixture enters it for the duration of a test),
``Gateway.chat`` / ``achat`` / ``openai`` in the same context send every workflow to that client:
the arm's model, recorded, replayed and measured in the test's call log with the test's contract,
with no fallback, shadow or kill switch (those would call models the gate does not judge).

Two layers, the first that is set wins:

* a ``ContextVar``: the test's thread, the asyncio tasks it starts, ``achat`` (which copies the
  caller's context), and any thread started with ``contextvars.copy_context().run``;
* a process-wide pin for the same duration, for threads the code under test starts itself
  (``threading.Thread``, a ``ThreadPoolExecutor`` made at import) without copying the context.
  pytest runs one test at a time in a process (each xdist worker is its own process), so while a
  test runs, every thread of the process belongs to it. Nested pins stack; leaving a block
  restores the pin it replaced.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pytest_modelgate.calls.client import Reply

__all__ = ["PinnedClient", "current_pin", "pinned_to"]


class PinnedClient(Protocol):
    """What a pin must offer: the ``llm`` fixture's ``LLM`` is one."""

    model: str
    arm: Any

    def chat(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Reply:
        """One measured chat call on the pinned model."""
        ...

    def openai(self, *, pin_model: bool = False) -> Any:
        """An openai SDK client measured like ``chat``."""
        ...

    def note_fallback(self, reason: str) -> None:
        """Count a product-level fallback on the pinned arm."""
        ...


_PIN: contextvars.ContextVar[PinnedClient | None] = contextvars.ContextVar(
    "pytest_modelgate_gateway_pin", default=None
)


class _ProcessPin:
    """The process-wide layer: a stack of pins, the last one current (a list read: no lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stack: list[PinnedClient] = []

    def push(self, client: PinnedClient) -> None:
        with self._lock:
            self.stack = [*self.stack, client]

    def pop(self, client: PinnedClient) -> None:
        with self._lock:
            stack = list(self.stack)
            # The last entry for this client: blocks may end out of order across contexts.
            for index in range(len(stack) - 1, -1, -1):
                if stack[index] is client:
                    del stack[index]
                    break
            self.stack = stack


_PROCESS = _ProcessPin()


def current_pin() -> PinnedClient | None:
    """The client every route is pinned to here, or ``None`` (production)."""
    pin = _PIN.get()
    if pin is not None:
        return pin
    stack = _PROCESS.stack
    return stack[-1] if stack else None


@contextlib.contextmanager
def pinned_to(client: PinnedClient) -> Iterator[PinnedClient]:
    """Pin every gateway route to ``client`` in this context, and in threads that do not
    carry the context, until the block ends."""
    token = _PIN.set(client)
    _PROCESS.push(client)
    try:
        yield client
    finally:
        _PROCESS.pop(client)
        try:
            _PIN.reset(token)
        except ValueError:  # torn down in another context (an async plugin's fixture runner)
            _PIN.set(None)
