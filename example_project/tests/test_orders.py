"""Order lookups: the assistant looks the order up with its tool and tells the customer its status.

Known order ids must be looked up and their status stated; an unknown id is looked up and reported
as not found; a question without an order id gets a request for the order number, with no lookup.
Whatever happens, the customer is answered in their own language.
"""

from __future__ import annotations

import pytest
from pytest_modelgate import detect_language

from support_desk.orders import NOT_FOUND, answer_order_question

# (id, customer message, order id in it, its status in the order database, language)
# fmt: off
_KNOWN = [
    ("known-en-1", "Hi, where is my order SO-10423? It was supposed to ship on Monday.",
     "SO-10423", "shipped", "en"),
    ("known-en-2", "Can you check order SO-10425 for me? I have not heard anything.",
     "SO-10425", "processing", "en"),
    ("known-en-3", "Order MK-4411 - did my cancellation go through?", "MK-4411", "cancelled", "en"),
    ("known-zh-1", "你好，我的订单SO-10424现在是什么状态？", "SO-10424", "delivered", "zh"),
    ("known-zh-2", "请帮我查一下订单 SO-20117 的进度。", "SO-20117", "refunded", "zh"),
    ("known-zh-3", "订单号 MK-4410，什么时候能到？", "MK-4410", "shipped", "zh"),
    ("known-ja-1", "注文番号JP-88120の配送状況を教えてください。", "JP-88120", "delivered", "ja"),
    ("known-ja-2", "SO-31005 の注文はいつ発送されますか？", "SO-31005", "processing", "ja"),
    ("known-ja-3", "注文 SO-10426 はキャンセルされましたか？", "SO-10426", "cancelled", "ja"),
    ("known-es-1", "Hola, ¿cuál es el estado de mi pedido ES-55012?",
     "ES-55012", "processing", "es"),
    ("known-es-2", "Mi pedido SO-20118 no ha llegado todavía, ¿dónde está?",
     "SO-20118", "shipped", "es"),
    ("known-es-3", "Quiero saber si el pedido SO-31006 ya fue entregado.",
     "SO-31006", "delivered", "es"),
]
# fmt: on

# (id, customer message, the unknown order id, language)
_UNKNOWN = [
    ("unknown-en-1", "What is the status of order SO-99999?", "SO-99999", "en"),
    ("unknown-en-2", "I placed order QA-2024 yesterday, has it shipped?", "QA-2024", "en"),
    ("unknown-zh-1", "我的订单 AB-12345 到哪里了？", "AB-12345", "zh"),
    ("unknown-ja-1", "注文番号 XY-00001 の状況を確認したいです。", "XY-00001", "ja"),
    ("unknown-es-1", "¿Me pueden decir dónde está mi pedido ZZ-7777?", "ZZ-7777", "es"),
]

# (id, customer message without an order id, language)
_NO_ID = [
    ("no-id-en-1", "Where is my order? I ordered it a week ago.", "en"),
    ("no-id-en-2", "Has my last purchase shipped yet?", "en"),
    ("no-id-zh-1", "我的订单到哪了？已经等了好几天了。", "zh"),
    ("no-id-ja-1", "注文した商品がまだ届きません。どうなっていますか？", "ja"),
    ("no-id-es-1", "¿Dónde está mi pedido? Lo hice hace una semana.", "es"),
]

# How each language asks for the order number.
_ASKS_FOR_NUMBER = {
    "en": "order number",
    "zh": "订单号",
    "ja": "注文番号",
    "es": "número de pedido",
}


@pytest.mark.workflow("order_lookup")
@pytest.mark.model_contract(tools=["lookup_order"])
@pytest.mark.parametrize(
    ("message", "order_id", "status", "language"),
    [pytest.param(*case[1:], id=case[0]) for case in _KNOWN],
)
def test_order_status(message: str, order_id: str, status: str, language: str) -> None:
    answer = answer_order_question(message)

    assert answer.lookups == (order_id,)
    assert answer.status == status
    assert order_id in answer.text
    assert status in answer.text
    assert detect_language(answer.text) == language


@pytest.mark.workflow("order_lookup")
@pytest.mark.model_contract(tools=["lookup_order"])
@pytest.mark.parametrize(
    ("message", "order_id", "language"),
    [pytest.param(*case[1:], id=case[0]) for case in _UNKNOWN],
)
def test_unknown_order(message: str, order_id: str, language: str) -> None:
    answer = answer_order_question(message)

    assert answer.lookups == (order_id,)
    assert answer.status == NOT_FOUND
    assert NOT_FOUND in answer.text
    assert detect_language(answer.text) == language


@pytest.mark.workflow("order_lookup")
@pytest.mark.model_contract(tools=["lookup_order"])
@pytest.mark.parametrize(
    ("message", "language"),
    [pytest.param(*case[1:], id=case[0]) for case in _NO_ID],
)
def test_order_without_id(message: str, language: str) -> None:
    answer = answer_order_question(message)

    assert answer.lookups == ()
    assert _ASKS_FOR_NUMBER[language] in answer.text
    assert detect_language(answer.text) == language
