"""Ticket triage: each ticket must land in the right queue with the right priority.

Expected labels follow the support team's routing rules: the first matching topic decides the
queue (refund, then billing, shipping, account, technical; else other); "urgent", "ASAP",
"immediately" (紧急, 马上, 至急, 急いで, urgente) make a ticket urgent; anger or a repeated
complaint ("third time", "again", 又, 生气, 再度, otra vez) makes it high.
"""

from __future__ import annotations

import pytest

from support_desk.triage import SUMMARY_MAX_CHARS, triage_ticket

# (id, ticket, category, priority, language)
# fmt: off
_TICKETS = [
    # English
    ("refund-en-1", "I returned the blender two weeks ago and still have not received my refund.",
     "refund", "normal", "en"),
    ("refund-en-2", "I want my money back for the broken headphones, this is unacceptable!",
     "refund", "high", "en"),
    ("billing-en-1", "I was charged twice for order SO-10423, please fix it immediately.",
     "billing", "urgent", "en"),
    ("billing-en-2", "Where can I download the invoice for my March subscription?",
     "billing", "normal", "en"),
    ("shipping-en-1", "My package has not arrived yet and the tracking page shows no updates.",
     "shipping", "normal", "en"),
    ("shipping-en-2", "Third time asking: where is my delivery? I am really angry.",
     "shipping", "high", "en"),
    ("account-en-1", "I forgot my password and the reset email never comes.",
     "account", "normal", "en"),
    ("account-en-2", "I can't log in to my account and I need it ASAP for a client demo.",
     "account", "urgent", "en"),
    ("technical-en-1", "The mobile app crashes every time I open the settings screen.",
     "technical", "normal", "en"),
    ("other-en-1", "Do you have a physical store in Toronto where I can try the shoes on?",
     "other", "normal", "en"),
    # Chinese
    ("refund-zh-1", "我想申请退款，收到的商品和描述的不一样。", "refund", "normal", "zh"),
    ("billing-zh-1", "我的信用卡被扣款两次，请马上处理！", "billing", "urgent", "zh"),
    ("billing-zh-2", "请帮我开一张上个月的发票，公司报销要用。", "billing", "normal", "zh"),
    ("shipping-zh-1", "我的快递一个星期了还没到，物流信息也不更新。", "shipping", "normal", "zh"),
    ("shipping-zh-2", "配送又延迟了，我非常生气。", "shipping", "high", "zh"),
    ("account-zh-1", "我忘记了登录密码，手机也收不到验证码。", "account", "normal", "zh"),
    ("technical-zh-1", "应用一打开就崩溃，屏幕上显示未知错误。", "technical", "normal", "zh"),
    ("technical-zh-2", "结算页面一直出现错误，无法下单，紧急！", "technical", "urgent", "zh"),
    ("other-zh-1", "请问你们的门店周末营业吗？", "other", "normal", "zh"),
    # Japanese
    ("refund-ja-1", "注文した靴のサイズが合わないので、返金をお願いします。",
     "refund", "normal", "ja"),
    ("billing-ja-1", "先月の請求書が二通届いています。確認をお願いします。",
     "billing", "normal", "ja"),
    ("billing-ja-2", "身に覚えのない請求があります。至急確認してください。",
     "billing", "urgent", "ja"),
    ("shipping-ja-1", "一週間経っても荷物が届かないのですが、どうなっていますか。",
     "shipping", "normal", "ja"),
    ("shipping-ja-2", "配送状況がずっと更新されていません。急いで調べてください。",
     "shipping", "urgent", "ja"),
    ("account-ja-1", "パスワードを忘れてしまい、ログインできません。", "account", "normal", "ja"),
    ("technical-ja-1", "アプリを開くとエラーが表示されて、先に進めません。",
     "technical", "normal", "ja"),
    ("technical-ja-2", "保存ボタンの不具合が再度発生しています。", "technical", "high", "ja"),
    ("other-ja-1", "店舗の営業時間を教えてください。", "other", "normal", "ja"),
    # Spanish
    ("refund-es-1", "Quiero un reembolso, el producto llegó roto.", "refund", "normal", "es"),
    ("refund-es-2", "Es la tercera vez que pido el reembolso y otra vez no pasa nada.",
     "refund", "high", "es"),
    ("billing-es-1", "Me han hecho un cobro duplicado en la tarjeta.", "billing", "normal", "es"),
    ("billing-es-2", "Necesito la factura de mi pedido para hoy, es urgente.",
     "billing", "urgent", "es"),
    ("shipping-es-1", "Mi paquete todavía no ha llegado y ya pasó una semana.",
     "shipping", "normal", "es"),
    ("shipping-es-2", "El envío lleva dos semanas de retraso, ¿dónde está?",
     "shipping", "normal", "es"),
    ("account-es-1", "No puedo entrar en mi cuenta porque olvidé la contraseña.",
     "account", "normal", "es"),
    ("technical-es-1", "La aplicación no funciona desde la última actualización.",
     "technical", "normal", "es"),
    ("other-es-1", "¿Tienen una tienda física en Madrid?", "other", "normal", "es"),
]
# fmt: on


# What every triage reply must be: checked on each reply of both arms, compared between them.
TRIAGE_SCHEMA = {
    "type": "object",
    "required": ["category", "priority", "summary"],
    "properties": {
        "category": {"enum": ["refund", "billing", "shipping", "account", "technical", "other"]},
        "priority": {"enum": ["normal", "high", "urgent"]},
        "summary": {"type": "string"},
    },
}


@pytest.mark.model_contract(json=True, schema=TRIAGE_SCHEMA)
@pytest.mark.parametrize(
    ("ticket", "category", "priority", "language"),
    [pytest.param(*case[1:], id=case[0]) for case in _TICKETS],
)
def test_triage(ticket: str, category: str, priority: str, language: str) -> None:
    triage = triage_ticket(ticket)

    assert (triage.category, triage.priority) == (category, priority)
    assert triage.language == language
    assert 0 < len(triage.summary) <= SUMMARY_MAX_CHARS
