"""What the product needs from a model client, and nothing more.

The product depends on this protocol, not on pytest-modelgate: in production a thin adapter over
the provider SDK satisfies it; in the workflow tests the gate's ``llm`` fixture does, structurally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["ChatReply", "ModelClient", "ToolCallLike"]


class ToolCallLike(Protocol):
    """A function call the model asked for; ``arguments_text`` is the raw JSON it produced."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def arguments_text(self) -> str: ...


class ChatReply(Protocol):
    """One chat completion: its text, the tool calls it asked for and why it stopped."""

    @property
    def text(self) -> str: ...

    @property
    def tool_calls(self) -> Sequence[ToolCallLike]: ...

    @property
    def finish_reason(self) -> str | None: ...


class ModelClient(Protocol):
    """An OpenAI-compatible chat model, already bound to a model and its credentials."""

    def chat(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> ChatReply:
        """Send one chat completion; ``params`` go into the request body unchanged."""
        ...

    def note_fallback(self, reason: str) -> None:
        """Record that a workflow gave up on the model's answer and used its fallback path."""
        ...
