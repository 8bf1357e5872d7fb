"""Replies to customers, in the customer's language, streamed as the support chat widget does.

Streaming is what the widget uses in production, so it is what we test: the time to the first
token is what the customer feels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from support_desk.gateway import default_gateway

if TYPE_CHECKING:
    from pytest_modelgate.gateway import Gateway

__all__ = ["MAX_REPLY_TOKENS", "SYSTEM_PROMPT", "CustomerReply", "reply_to_customer"]

WORKFLOW = "customer_reply"

# The widget shows a short message; a longer reply is cut by the API (finish_reason "length").
MAX_REPLY_TOKENS = 160

SYSTEM_PROMPT = """\
You are a friendly customer-support agent of an online shop. Reply to the customer's message in
the language the customer wrote in. Be brief and polite: two or three sentences, no lists."""

# Shown when the model returns nothing usable; English, because we cannot know better.
CANNED_REPLY = "Thank you for contacting us. A member of our team will get back to you shortly."


@dataclass(frozen=True)
class CustomerReply:
    """The reply shown to the customer; ``truncated`` when the token budget cut it short."""

    text: str
    truncated: bool = False
    source: Literal["model", "fallback"] = "model"


def reply_to_customer(
    message: str, *, key: str | None = None, gateway: Gateway | None = None
) -> CustomerReply:
    """Write a short reply to a customer's message, in the customer's language.

    ``key`` and ``gateway`` as for ``triage_ticket``.
    """
    gateway = gateway or default_gateway()
    reply = gateway.chat(
        WORKFLOW,
        [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": message},
        ],
        stream=True,
        max_tokens=MAX_REPLY_TOKENS,
        key=key,
        temperature=0.3,
    )
    text = reply.text.strip()
    if not text:
        gateway.note_fallback(WORKFLOW, "replies: empty reply", key=key)
        return CustomerReply(text=CANNED_REPLY, source="fallback")
    return CustomerReply(text=text, truncated=reply.finish_reason == "length")
