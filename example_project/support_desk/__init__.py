"""A small support-desk product: ticket triage, order lookups and customer replies.

Every workflow takes the model client from its caller (see ``support_desk.client``) and never names
a model: which model answers is a deployment decision, and the gate's decision in the tests.
"""

from __future__ import annotations

from support_desk.client import ChatReply, ModelClient, ToolCallLike
from support_desk.orders import ORDERS, OrderAnswer, answer_order_question
from support_desk.replies import CustomerReply, reply_to_customer
from support_desk.triage import CATEGORIES, PRIORITIES, Triage, triage_ticket

__all__ = [
    "CATEGORIES",
    "ORDERS",
    "PRIORITIES",
    "ChatReply",
    "CustomerReply",
    "ModelClient",
    "OrderAnswer",
    "ToolCallLike",
    "Triage",
    "answer_order_question",
    "reply_to_customer",
    "triage_ticket",
]
