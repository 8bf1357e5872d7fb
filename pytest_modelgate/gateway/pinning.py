"""Pinning every route to one client: how the gate tests product code built on the gateway.

While :func:`pinned_to` is active (the ``llm`` fixture enters it for the duration of a test),
``Gateway.chat`` / ``achat`` / ``openai`` in the same context send every workflow to that client:
the arm's model, recorded, replayed and measured in the test's call log with the test's contract,
with no fallback, shadow or kill switch (those would call models the gate does not judge).

The pin is a ``ContextVar``, not process state: it holds in the test's thread, in asyncio tasks it
starts and in ``achat`` (which copies the caller's context); a thread the code under test starts
itself sees it only if started with ``contextvars.copy_context().run``.
"""

from __future__ import annotations

import contextlib
import contextvars
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


_PIN: contextvars.ContextVar[PinnedClient | None] = contextvars.ContextVar(
    "pytest_modelgate_gateway_pin", default=None
)


def current_pin() -> PinnedClient | None:
    """The client every route is pinned to in this context, or ``None`` (production)."""
    return _PIN.get()


@contextlib.contextmanager
def pinned_to(client: PinnedClient) -> Iterator[PinnedClient]:
    """Pin every gateway route to ``client`` in this context until the block ends."""
    token = _PIN.set(client)
    try:
        yield client
    finally:
        try:
            _PIN.reset(token)
        except ValueError:  # torn down in another context (an async plugin's fixture runner)
            _PIN.set(None)
