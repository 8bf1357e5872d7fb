"""Order status questions, answered by the model with a ``lookup_order`` tool.

The tool loop: the model asks for ``lookup_order(order_id)``, we validate the call, look the order
up in the (fake) order database and send the result back as a tool message; the model then writes
the answer. A call to an unknown tool, or arguments that do not fit the schema, is a drifted call:
we do not guess what the model meant, we answer from our own order-id rule instead and report the
fallback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from support_desk.gateway import default_gateway

if TYPE_CHECKING:
    from pytest_modelgate import ToolCall
    from pytest_modelgate.gateway import Gateway

__all__ = [
    "LOOKUP_ORDER_TOOL",
    "NOT_FOUND",
    "ORDERS",
    "Order",
    "OrderAnswer",
    "ToolCallError",
    "answer_order_question",
    "lookup_order",
]

WORKFLOW = "order_lookup"

ORDER_ID_PATTERN = r"[A-Z]{2,4}-[0-9]{4,8}"
_ORDER_ID = re.compile(rf"\b{ORDER_ID_PATTERN}\b", re.ASCII)
# Status reported for an order id the database does not know.
NOT_FOUND = "not found"
# Model turns per question; a model that keeps calling tools is cut off and falls back.
MAX_TOOL_ROUNDS = 3

SYSTEM_PROMPT = """\
You are the order assistant of an online shop. To answer questions about an order, call the
lookup_order tool with the customer's order number, then tell the customer the order's status.
If the customer gave no order number, ask for it. Always answer in the customer's language."""


@dataclass(frozen=True)
class Order:
    """One row of the order database."""

    order_id: str
    status: str
    item: str


# The fake order database of the example: status values are the shop's own codes.
ORDERS: Mapping[str, Order] = {
    order.order_id: order
    for order in (
        Order("SO-10423", "shipped", "espresso machine"),
        Order("SO-10424", "delivered", "running shoes"),
        Order("SO-10425", "processing", "desk lamp"),
        Order("SO-10426", "cancelled", "phone case"),
        Order("SO-20117", "refunded", "wireless headphones"),
        Order("SO-20118", "shipped", "yoga mat"),
        Order("SO-31005", "processing", "winter jacket"),
        Order("SO-31006", "delivered", "coffee grinder"),
        Order("MK-4410", "shipped", "mechanical keyboard"),
        Order("MK-4411", "cancelled", "monitor arm"),
        Order("JP-88120", "delivered", "rice cooker"),
        Order("ES-55012", "processing", "hiking boots"),
    )
}

LOOKUP_ORDER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order by its order number and return its current status.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {
                    "type": "string",
                    "pattern": f"^{ORDER_ID_PATTERN}$",
                    "description": "The order number, for example SO-10423.",
                }
            },
            "required": ["order_id"],
            "additionalProperties": False,
        },
    },
}


class ToolCallError(ValueError):
    """The model called a tool we did not offer, or with arguments that do not fit its schema."""


@dataclass(frozen=True)
class OrderAnswer:
    """What the customer is told, and what the product looked up to say it.

    ``lookups`` are the order ids looked up, in order; ``status`` is the status of the last one
    (``NOT_FOUND`` for an unknown id, ``None`` when nothing was looked up).
    """

    text: str
    lookups: tuple[str, ...] = ()
    status: str | None = None
    source: Literal["model", "fallback"] = "model"


def lookup_order(order_id: str) -> dict[str, str]:
    """The tool's result, as sent back to the model."""
    order = ORDERS.get(order_id)
    if order is None:
        return {"order_id": order_id, "status": NOT_FOUND}
    return {"order_id": order.order_id, "status": order.status, "item": order.item}


def validate_tool_call(call: ToolCall) -> str:
    """The order id of a well-formed ``lookup_order`` call; ``ToolCallError`` otherwise."""
    if call.name != "lookup_order":
        raise ToolCallError(f"unknown tool {call.name!r}")
    try:
        arguments: Any = json.loads(call.arguments_text or "{}")
    except ValueError:
        raise ToolCallError(f"arguments are not JSON: {call.arguments_text[:80]!r}") from None
    if not isinstance(arguments, dict) or set(arguments) != {"order_id"}:
        raise ToolCallError(f"arguments must be exactly {{order_id}}, got {arguments!r}")
    order_id = arguments["order_id"]
    if not isinstance(order_id, str) or not re.fullmatch(ORDER_ID_PATTERN, order_id):
        raise ToolCallError(f"order_id {order_id!r} is not an order number")
    return order_id


def answer_order_question(
    message: str, *, key: str | None = None, gateway: Gateway | None = None
) -> OrderAnswer:
    """Answer a customer's question about an order, looking it up through the model's tool call.

    ``key`` and ``gateway`` as for ``triage_ticket``.
    """
    gateway = gateway or default_gateway()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": message},
    ]
    lookups: list[str] = []
    status: str | None = None
    for _ in range(MAX_TOOL_ROUNDS):
        reply = gateway.chat(
            WORKFLOW,
            messages,
            key=key,
            tools=[LOOKUP_ORDER_TOOL],
            tool_choice="auto",
            temperature=0,
        )
        if not reply.tool_calls:
            return OrderAnswer(text=reply.text.strip(), lookups=tuple(lookups), status=status)
        try:
            order_ids = [validate_tool_call(call) for call in reply.tool_calls]
        except ToolCallError as exc:
            gateway.note_fallback(WORKFLOW, f"orders: drifted tool call: {exc}", key=key)
            return fallback_answer(message)
        messages.append(
            {
                "role": "assistant",
                "content": reply.text or None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments_text},
                    }
                    for call in reply.tool_calls
                ],
            }
        )
        for call, order_id in zip(reply.tool_calls, order_ids, strict=True):
            result = lookup_order(order_id)
            lookups.append(order_id)
            status = result["status"]
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
            )
    reason = f"orders: no answer after {MAX_TOOL_ROUNDS} tool rounds"
    gateway.note_fallback(WORKFLOW, reason, key=key)
    return fallback_answer(message)


def fallback_answer(message: str) -> OrderAnswer:
    """Answer without the model: find the order id ourselves and reply from a template (English)."""
    match = _ORDER_ID.search(message)
    if match is None:
        return OrderAnswer(
            text="I can help you check your order. Could you please tell me your order number?",
            source="fallback",
        )
    result = lookup_order(match.group(0))
    return OrderAnswer(
        text=f"Your order {result['order_id']} is {result['status']}.",
        lookups=(result["order_id"],),
        status=result["status"],
        source="fallback",
    )
