"""A small support-desk product: ticket triage, order lookups and customer replies.

Every workflow asks the gateway for its workflow by name (``ticket_triage``, ``order_lookup``,
``customer_reply``) and never names a model: ``routes:`` in ``modelgate.yaml`` decides which model
answers (see ``support_desk.gateway``), and in the tests the gate does.
"""

from __future__ import annotations

from support_desk.gateway import default_gateway
from support_desk.orders import ORDERS, OrderAnswer, answer_order_question
from support_desk.replies import CustomerReply, reply_to_customer
from support_desk.triage import CATEGORIES, PRIORITIES, Triage, triage_ticket

__all__ = [
    "CATEGORIES",
    "ORDERS",
    "PRIORITIES",
    "CustomerReply",
    "OrderAnswer",
    "Triage",
    "answer_order_question",
    "default_gateway",
    "reply_to_customer",
    "triage_ticket",
]
