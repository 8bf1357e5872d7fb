"""Customer replies: streamed, short, and always in the language the customer wrote in."""

from __future__ import annotations

import pytest
from pytest_modelgate import detect_language

from support_desk.replies import reply_to_customer

# (id, customer message, its language)
_MESSAGES = [
    ("en-1", "Thanks for the quick help yesterday!", "en"),
    ("en-2", "Can I change the delivery address for my next order?", "en"),
    ("en-3", "Do you ship to Canada?", "en"),
    ("en-4", "The jacket I bought is a bit too small. What are my options?", "en"),
    ("en-5", "I would like to leave feedback about your courier.", "en"),
    ("en-6", "Is there a student discount?", "en"),
    ("zh-1", "谢谢你们昨天的帮助！", "zh"),
    ("zh-2", "我可以修改下一个订单的收货地址吗？", "zh"),
    ("zh-3", "你们能寄到加拿大吗？", "zh"),
    ("zh-4", "我买的外套有点小，可以换大一号吗？", "zh"),
    ("zh-5", "我想对你们的快递员提一些意见。", "zh"),
    ("zh-6", "学生有折扣吗？", "zh"),
    ("ja-1", "昨日は迅速に対応していただき、ありがとうございました。", "ja"),
    ("ja-2", "次の注文のお届け先を変更できますか？", "ja"),
    ("ja-3", "カナダへの発送はできますか？", "ja"),
    ("ja-4", "購入したジャケットが少し小さいです。交換できますか？", "ja"),
    ("ja-5", "配達員の対応について意見を伝えたいです。", "ja"),
    ("ja-6", "学生割引はありますか？", "ja"),
    ("es-1", "¡Gracias por la ayuda tan rápida de ayer!", "es"),
    ("es-2", "¿Puedo cambiar la dirección de entrega de mi próximo pedido?", "es"),
    ("es-3", "¿Hacen envíos a Canadá?", "es"),
    ("es-4", "La chaqueta que compré me queda pequeña. ¿Qué puedo hacer?", "es"),
    ("es-5", "Me gustaría dejar un comentario sobre su mensajero.", "es"),
    ("es-6", "¿Tienen descuento para estudiantes?", "es"),
    ("fr-1", "Merci pour votre aide rapide hier !", "fr"),
    ("fr-2", "Est-ce que je peux changer l'adresse de livraison de ma prochaine commande ?", "fr"),
    ("fr-3", "Est-ce que vous livrez au Canada ?", "fr"),
    ("fr-4", "La veste que j'ai achetée est un peu petite. Que puis-je faire ?", "fr"),
    ("fr-5", "Je voudrais laisser un avis sur votre livreur.", "fr"),
    ("fr-6", "Avez-vous une réduction pour les étudiants ?", "fr"),
    ("de-1", "Vielen Dank für die schnelle Hilfe gestern!", "de"),
    ("de-2", "Kann ich die Lieferadresse für meine nächste Bestellung ändern?", "de"),
    ("de-3", "Liefern Sie auch nach Kanada?", "de"),
    ("de-4", "Die Jacke, die ich gekauft habe, ist etwas zu klein. Was kann ich tun?", "de"),
    ("de-5", "Ich möchte eine Rückmeldung zu Ihrem Paketboten geben.", "de"),
    ("de-6", "Gibt es einen Rabatt für Studenten?", "de"),
]


@pytest.mark.model_contract(language="match")
@pytest.mark.latency_budget(ttft_p95_ms=200)
@pytest.mark.parametrize(
    ("message", "language"),
    [pytest.param(*case[1:], id=case[0]) for case in _MESSAGES],
)
def test_customer_reply(message: str, language: str) -> None:
    reply = reply_to_customer(message)

    assert reply.text
    assert not reply.truncated, "the reply did not fit the widget's token budget"
    assert detect_language(reply.text) == language
