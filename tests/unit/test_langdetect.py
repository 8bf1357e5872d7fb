"""The shared language detector on realistic customer-support messages."""

from __future__ import annotations

import pytest

from pytest_modelgate.calls.langdetect import detect_language

MESSAGES: dict[str, list[str]] = {
    "en": [
        "Hi, I was charged twice for my subscription this month. Can you help?",
        "My package still hasn't arrived and the tracking page shows nothing.",
        "I can't log in to my account since yesterday, the app says my password is wrong.",
        "Need a refund for order SO-10423 ASAP",
    ],
    "es": [
        "Hola, me cobraron dos veces este mes. ¿Pueden ayudarme?",
        "Mi paquete todavía no ha llegado y ya pasaron dos semanas.",
        "No puedo entrar en mi cuenta, la contraseña no funciona.",
        "Quiero un reembolso del pedido SO-10423, por favor.",
    ],
    "fr": [
        "Bonjour, je n'ai toujours pas reçu ma commande SO-10423.",
        "J'ai été débité deux fois pour la même facture, c'est inacceptable.",
        "Je n'arrive plus à me connecter à mon compte depuis hier.",
        "Pouvez-vous me rembourser ? Le produit est arrivé cassé.",
    ],
    "de": [
        "Hallo, meine Bestellung ist immer noch nicht angekommen.",
        "Ich wurde für die Rechnung zweimal belastet, bitte prüfen Sie das.",
        "Die App stürzt bei jedem Start ab, was kann ich tun?",
        "Ich möchte mein Geld zurück, das Paket war beschädigt.",
    ],
    "pt": [
        "Olá, meu pedido ainda não chegou. Podem verificar?",
        "Fui cobrado duas vezes na fatura deste mês.",
        "Não consigo acessar a minha conta, já troquei a senha.",
        "Quero o reembolso do pedido SO-10423, o produto veio com defeito.",
    ],
    "it": [
        "Buongiorno, il mio ordine non è ancora arrivato.",
        "Mi avete addebitato due volte la stessa fattura.",
        "Non riesco ad accedere al mio account da ieri.",
        "Vorrei un rimborso, il pacco è arrivato danneggiato.",
    ],
    "zh": [
        "我的快递还没到，已经等了一个星期了。",
        "这个月被扣款两次，请帮我查一下账单。",
        "订单SO-10423什么时候发货？",
        "我忘记密码了，无法登录账号。",
    ],
    "ja": [
        "注文した商品がまだ届かないのですが、確認していただけますか。",
        "パスワードを忘れてログインできません。",
        "請求書の金額が間違っています。至急確認してください。",
        "SO-10423の返金はいつになりますか？",
    ],
    "ko": [
        "주문한 상품이 아직 도착하지 않았어요.",
        "비밀번호를 잊어버려서 로그인할 수 없습니다.",
        "이번 달에 요금이 두 번 청구되었습니다.",
    ],
    "ru": [
        "Здравствуйте, мой заказ до сих пор не доставлен.",
        "С меня дважды списали деньги за подписку.",
    ],
    "ar": ["مرحبا، لم يصل طلبي بعد. هل يمكنكم المساعدة؟"],
    "hi": ["नमस्ते, मेरा ऑर्डर अभी तक नहीं आया है।"],
    "th": ["สวัสดีครับ พัสดุของผมยังไม่มาถึงเลย"],
    "he": ["שלום, ההזמנה שלי עדיין לא הגיעה."],
    "el": ["Γεια σας, η παραγγελία μου δεν έχει φτάσει ακόμα."],
}


@pytest.mark.parametrize(
    ("expected", "text"),
    [(language, text) for language, texts in MESSAGES.items() for text in texts],
)
def test_detects_support_messages(expected: str, text: str) -> None:
    assert detect_language(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "12345 !!!", "SO-10423?", "🙂👍"])
def test_no_letters_is_none(text: str) -> None:
    if any(char.isalpha() for char in text):
        # "SO-10423" has two Latin letters and no stop words: undecided Latin is English.
        assert detect_language(text) == "en"
    else:
        assert detect_language(text) is None


def test_kana_makes_japanese_even_when_kanji_dominate() -> None:
    assert detect_language("至急返金希望です") == "ja"
    assert detect_language("至急返金希望") == "zh"


def test_chinese_middle_dot_is_not_kana() -> None:
    # U+30FB (katakana middle dot) appears in Chinese transliterated names.
    assert detect_language("迈克尔・杰克逊的专辑订单还没到") == "zh"


def test_dominant_script_wins_in_mixed_text() -> None:
    assert detect_language("My order to 北京 has not arrived yet, please check") == "en"
    assert detect_language("我的app一直报错，怎么办") == "zh"
    assert detect_language("주문 SO-10423 배송 상태를 알려주세요") == "ko"


def test_undecided_latin_is_english() -> None:
    assert detect_language("Xyzzy plugh") == "en"


def test_letter_hints_break_ties() -> None:
    assert detect_language("¿Reembolso?") == "es"
    assert detect_language("Straße") == "de"
