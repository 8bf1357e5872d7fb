"""The answers the simulator gives: request parsing, the three tasks, token counts.

Everything here is pure: a parsed ``ChatRequest``, the ``Faults`` drawn for it and a seeded
``random.Random`` go in, an ``Answer`` comes out. The HTTP layer (``server.py``) decides faults
and latency and shapes the answer into JSON or SSE. The rules are documented, with examples, in
``docs/simulator.md``; workflow tests assert on them, so change both together.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_modelgate.calls.langdetect import detect_language
from pytest_modelgate.calls.protocol import content_text
from pytest_modelgate.errors import ModelgateError

__all__ = [
    "CATEGORIES",
    "ORDER_ID_RE",
    "PRIORITIES",
    "REPLY_LANGUAGES",
    "Answer",
    "ChatRequest",
    "Faults",
    "RequestError",
    "Task",
    "ToolCall",
    "answer_request",
    "classify",
    "estimate_tokens",
    "parse_chat_request",
    "reply_text",
    "truncate_to_tokens",
]

Task = Literal["classification", "tool_call", "tool_ask", "tool_summary", "reply", "scripted"]
FinishReason = Literal["stop", "length", "tool_calls"]

# ASCII word boundaries on purpose: with Unicode boundaries an id glued to CJK text
# ("订单SO-10423还没到") would not be found, because ideographs count as word characters.
ORDER_ID_RE = re.compile(r"\b[A-Z]{2,4}-\d{4,8}\b", re.ASCII)

# Categories in rule order: the first category with a matching keyword wins.
_CATEGORY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("refund", ("refund", "money back", "退款", "返金", "reembolso", "remboursement")),
    (
        "billing",
        (
            "invoice",
            "charged",
            "charge",
            "bill",
            "payment",
            "发票",
            "扣款",
            "账单",
            "請求書",
            "請求",
            "factura",
            "cobro",
        ),
    ),
    (
        "shipping",
        (
            "delivery",
            "package",
            "shipping",
            "arrive",
            "tracking",
            "快递",
            "物流",
            "配送",
            "届か",
            "envío",
            "paquete",
        ),
    ),
    (
        "account",
        (
            "password",
            "login",
            "log in",
            "account",
            "密码",
            "账号",
            "登录",
            "パスワード",
            "ログイン",
            "contraseña",
            "cuenta",
        ),
    ),
    (
        "technical",
        (
            "error",
            "crash",
            "bug",
            "broken",
            "not working",
            "错误",
            "崩溃",
            "エラー",
            "不具合",
            "fallo",
            "no funciona",
        ),
    ),
)
CATEGORIES: tuple[str, ...] = (*(name for name, _ in _CATEGORY_KEYWORDS), "other")

_URGENT_KEYWORDS = ("urgent", "asap", "immediately", "紧急", "马上", "至急", "急い", "urgente")
_HIGH_KEYWORDS = ("angry", "unacceptable", "third time", "again", "生气", "又", "再度", "otra vez")
PRIORITIES: tuple[str, ...] = ("urgent", "high", "normal")

# A Latin keyword matches as a whole word, optionally inflected by one of these endings, so that
# "charge" finds "charged" but not "charger"; keywords in other scripts match anywhere.
_LATIN_SUFFIXES = r"(?:s|es|ed|d|ing|ly)?"
_SUMMARY_CHARS = 60

# Language -> phrase kind -> sentences. "reply" and "ask" are lists of sentences; "status" and
# "no_status" are one sentence each; "extras" are appended in order (cycling) for verbosity > 1.
_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "reply": (
            "Thank you for contacting us.",
            "We have received your message and will get back to you shortly.",
        ),
        "ask": (
            "I can help you check your order.",
            "Could you please tell me your order number?",
        ),
        "status": ("Your order {order_id} is {status}.",),
        "no_status": ("I looked up your order, but the system did not return its status.",),
        "extras": (
            "A support specialist is reviewing your request now.",
            "If you have an order number, please include it in your reply.",
            "We appreciate your patience.",
            "You can also check the status of your request in your account.",
        ),
    },
    "zh": {
        "reply": ("感谢您联系我们。", "我们已收到您的消息，会尽快回复您。"),
        "ask": ("我可以帮您查询订单。", "请提供您的订单号。"),
        "status": ("您的订单 {order_id} 状态：{status}。",),
        "no_status": ("我查询了您的订单，但系统没有返回订单状态。",),
        "extras": (
            "客服专员正在处理您的请求。",
            "如果您有订单号，请在回复中提供。",
            "感谢您的耐心等待。",
            "您也可以在账户中查看请求的处理状态。",
        ),
    },
    "ja": {
        "reply": (
            "お問い合わせいただきありがとうございます。",
            "メッセージを受け付けました。担当者より折り返しご連絡いたします。",
        ),
        "ask": ("ご注文の確認をお手伝いします。", "ご注文番号を教えていただけますか？"),
        "status": ("ご注文 {order_id} のステータスは「{status}」です。",),
        "no_status": ("ご注文を確認しましたが、ステータスを取得できませんでした。",),
        "extras": (
            "現在、サポート担当者がご依頼内容を確認しております。",
            "ご注文番号をお持ちの場合は、返信にてお知らせください。",
            "今しばらくお待ちください。",
            "ご依頼の状況はアカウントページからもご確認いただけます。",
        ),
    },
    "es": {
        "reply": (
            "Gracias por contactarnos.",
            "Hemos recibido su mensaje y le responderemos en breve.",
        ),
        "ask": (
            "Puedo ayudarle a consultar su pedido.",
            "¿Podría indicarme su número de pedido?",
        ),
        "status": ("Su pedido {order_id} está en estado: {status}.",),
        "no_status": ("He consultado su pedido, pero el sistema no ha devuelto su estado.",),
        "extras": (
            "Un especialista de soporte está revisando su solicitud.",
            "Si tiene un número de pedido, inclúyalo en su respuesta.",
            "Agradecemos su paciencia.",
            "También puede consultar el estado de su solicitud en su cuenta.",
        ),
    },
    "fr": {
        "reply": (
            "Merci de nous avoir contactés.",
            "Nous avons bien reçu votre message et nous vous répondrons rapidement.",
        ),
        "ask": (
            "Je peux vous aider à vérifier votre commande.",
            "Pourriez-vous me donner votre numéro de commande ?",
        ),
        "status": ("Votre commande {order_id} est au statut : {status}.",),
        "no_status": ("J'ai consulté votre commande, mais le système n'a pas renvoyé son statut.",),
        "extras": (
            "Un conseiller examine actuellement votre demande.",
            "Si vous avez un numéro de commande, merci de l'indiquer dans votre réponse.",
            "Nous vous remercions de votre patience.",
            "Vous pouvez également suivre votre demande depuis votre compte.",
        ),
    },
    "de": {
        "reply": (
            "Vielen Dank für Ihre Nachricht.",
            "Wir haben Ihre Anfrage erhalten und melden uns in Kürze bei Ihnen.",
        ),
        "ask": (
            "Ich helfe Ihnen gerne, Ihre Bestellung zu prüfen.",
            "Können Sie mir bitte Ihre Bestellnummer nennen?",
        ),
        "status": ("Ihre Bestellung {order_id} hat den Status: {status}.",),
        "no_status": (
            "Ich habe Ihre Bestellung geprüft, aber das System hat keinen Status geliefert.",
        ),
        "extras": (
            "Ein Mitarbeiter des Kundendienstes prüft Ihre Anfrage bereits.",
            "Falls Sie eine Bestellnummer haben, geben Sie diese bitte in Ihrer Antwort an.",
            "Vielen Dank für Ihre Geduld.",
            "Den Status Ihrer Anfrage können Sie auch in Ihrem Konto einsehen.",
        ),
    },
    "ko": {
        "reply": ("문의해 주셔서 감사합니다.", "메시지를 받았으며 곧 답변드리겠습니다."),
        "ask": ("주문 확인을 도와드리겠습니다.", "주문 번호를 알려주시겠어요?"),
        "status": ("주문 {order_id}의 상태는 {status}입니다.",),
        "no_status": ("주문을 조회했지만 시스템에서 상태를 받지 못했습니다.",),
        "extras": (
            "지원 담당자가 요청을 검토하고 있습니다.",
            "주문 번호가 있으시면 답장에 포함해 주세요.",
            "기다려 주셔서 감사합니다.",
            "계정에서 요청 처리 상태를 확인하실 수도 있습니다.",
        ),
    },
    "pt": {
        "reply": (
            "Obrigado por entrar em contato conosco.",
            "Recebemos a sua mensagem e responderemos em breve.",
        ),
        "ask": (
            "Posso ajudar a verificar o seu pedido.",
            "Poderia informar o número do seu pedido?",
        ),
        "status": ("O seu pedido {order_id} está com o status: {status}.",),
        "no_status": ("Consultei o seu pedido, mas o sistema não devolveu o status.",),
        "extras": (
            "Um especialista de suporte está analisando a sua solicitação.",
            "Se tiver um número de pedido, inclua-o na sua resposta.",
            "Agradecemos a sua paciência.",
            "Você também pode acompanhar o status da sua solicitação na sua conta.",
        ),
    },
    "it": {
        "reply": (
            "Grazie per averci contattato.",
            "Abbiamo ricevuto il suo messaggio e le risponderemo al più presto.",
        ),
        "ask": (
            "Posso aiutarla a controllare il suo ordine.",
            "Può indicarmi il numero dell'ordine?",
        ),
        "status": ("Il suo ordine {order_id} è nello stato: {status}.",),
        "no_status": ("Ho controllato il suo ordine, ma il sistema non ha restituito lo stato.",),
        "extras": (
            "Un operatore dell'assistenza sta esaminando la sua richiesta.",
            "Se ha un numero d'ordine, lo indichi nella risposta.",
            "La ringraziamo per la pazienza.",
            "Può anche controllare lo stato della richiesta nel suo account.",
        ),
    },
    "ru": {
        "reply": ("Спасибо, что обратились к нам.", "Мы получили ваше сообщение и скоро ответим."),
        "ask": ("Я помогу проверить ваш заказ.", "Пожалуйста, сообщите номер заказа."),
        "status": ("Ваш заказ {order_id} в статусе: {status}.",),
        "no_status": ("Я проверил ваш заказ, но система не вернула его статус.",),
        "extras": (
            "Специалист поддержки уже рассматривает ваш запрос.",
            "Если у вас есть номер заказа, укажите его в ответе.",
            "Благодарим за терпение.",
            "Статус запроса также можно проверить в личном кабинете.",
        ),
    },
}
REPLY_LANGUAGES: tuple[str, ...] = tuple(_TEMPLATES)

# How many leading sentences of each phrase kind survive a verbosity below 1.
_ESSENTIAL = {"reply": 1, "ask": 2, "status": 1, "no_status": 1}

_MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_JSON_WORD_RE = re.compile(r"\bjson\b", re.IGNORECASE)
_ID_ALPHABET = string.ascii_letters + string.digits


class RequestError(ModelgateError):
    """A request body the simulator rejects with 400, naming the offending parameter."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class ChatRequest:
    """The parts of a chat-completions body the simulator acts on."""

    model: str
    messages: tuple[Mapping[str, Any], ...]
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    tools: tuple[Mapping[str, Any], ...] = ()
    # Only "none" changes anything: it suppresses tool calls. Other values behave like "auto".
    tool_choice: object = None
    response_format_type: str | None = None


@dataclass(frozen=True)
class Faults:
    """Quality faults switched on for one request (drawn from the scenario or scripted)."""

    json_breakage: bool = False
    misclassify: bool = False
    tool_drift: bool = False
    language_drift: bool = False
    # Scripted reply text that replaces the task's answer.
    content: str | None = None


@dataclass(frozen=True)
class ToolCall:
    """One function call in an assistant answer; ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Answer:
    """What the simulated model says, before it is shaped into JSON or SSE."""

    task: Task
    content: str | None
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    tool_calls: tuple[ToolCall, ...] = field(default=())
    # The language the user wrote in (``None`` when undetectable) and the one answered in.
    language: str | None = None
    reply_language: str | None = None


def _is_cjk(code: int) -> bool:
    return (
        0x2E80 <= code < 0xA000  # CJK radicals, punctuation, kana, ideographs
        or 0xAC00 <= code < 0xD7B0  # Hangul syllables
        or 0xF900 <= code < 0xFB00  # CJK compatibility ideographs
        or 0xFF00 <= code < 0xFFF0  # full-width forms
        or 0x20000 <= code < 0x2FA20  # supplementary ideographs
    )


def estimate_tokens(text: str) -> int:
    """Deterministic token estimate: one per CJK character, one per 4 other characters (rounded up).

    Non-empty text counts at least 1 token; the empty string counts 0.
    """
    cjk = sum(1 for char in text if _is_cjk(ord(char)))
    other = len(text) - cjk
    return cjk + math.ceil(other / 4)


def truncate_to_tokens(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose ``estimate_tokens`` does not exceed ``limit``."""
    if estimate_tokens(text) <= limit:
        return text
    cjk = other = 0
    for index, char in enumerate(text):
        if _is_cjk(ord(char)):
            cjk += 1
        else:
            other += 1
        if cjk + math.ceil(other / 4) > limit:
            return text[:index]
    return text


def _expect_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"Invalid '{key}': expected an integer of at least 1.", key)
    return value


def parse_chat_request(body: object) -> ChatRequest:
    """Validate a decoded chat-completions body; raise ``RequestError`` for what OpenAI rejects."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("You must provide a model parameter.", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty array of message objects.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _MESSAGE_ROLES:
            raise RequestError(
                f"Invalid message at index {index}: expected an object with a valid 'role'.",
                f"messages[{index}]",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise RequestError(
                f"Invalid 'content' at index {index}: expected a string or an array of parts.",
                f"messages[{index}].content",
            )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise RequestError("Invalid 'stream': expected a boolean.", "stream")
    stream_options = body.get("stream_options")
    include_usage = False
    if stream_options is not None:
        if not stream:
            raise RequestError(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        if not isinstance(stream_options, dict):
            raise RequestError("Invalid 'stream_options': expected an object.", "stream_options")
        include_usage = stream_options.get("include_usage") is True
    # max_completion_tokens is the newer name; when both are sent the newer one wins.
    max_tokens = _expect_int(body, "max_completion_tokens") or _expect_int(body, "max_tokens")
    n = body.get("n")
    if n is not None and n != 1:
        raise RequestError("The simulator only supports n=1.", "n")
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise RequestError("Invalid 'tools': expected an array of tool objects.", "tools")
    response_format = body.get("response_format")
    response_format_type: str | None = None
    if response_format is not None:
        if not isinstance(response_format, dict) or response_format.get("type") not in (
            "text",
            "json_object",
            "json_schema",
        ):
            raise RequestError(
                "Invalid 'response_format': expected type text, json_object or json_schema.",
                "response_format",
            )
        response_format_type = response_format["type"]
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        tools=tuple(tools),
        tool_choice=body.get("tool_choice"),
        response_format_type=response_format_type,
    )


def _is_latin_keyword(keyword: str) -> bool:
    return all(ord(char) < 0x0250 for char in keyword)


def _compile(keywords: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(
        re.compile(rf"(?<![^\W\d_]){re.escape(word)}{_LATIN_SUFFIXES}(?![^\W\d_])")
        if _is_latin_keyword(word)
        else re.compile(re.escape(word))
        for word in keywords
    )


_CATEGORY_PATTERNS = tuple((name, _compile(words)) for name, words in _CATEGORY_KEYWORDS)
_URGENT_PATTERNS = _compile(_URGENT_KEYWORDS)
_HIGH_PATTERNS = _compile(_HIGH_KEYWORDS)


def _matches(patterns: Sequence[re.Pattern[str]], text: str) -> bool:
    return any(pattern.search(text) for pattern in patterns)


def classify(text: str) -> tuple[str, str]:
    """The ``(category, priority)`` the simulator's classifier gives ``text`` (without drift)."""
    lowered = text.lower()
    category = next(
        (name for name, patterns in _CATEGORY_PATTERNS if _matches(patterns, lowered)), "other"
    )
    if _matches(_URGENT_PATTERNS, lowered):
        priority = "urgent"
    elif _matches(_HIGH_PATTERNS, lowered):
        priority = "high"
    else:
        priority = "normal"
    return category, priority


def _sentence_count(kind: str, verbosity: float) -> int:
    base = len(_TEMPLATES["en"][kind])
    # Rounded half up (not Python's half-to-even) so that the documented table is easy to read.
    return max(_ESSENTIAL[kind], math.floor(base * verbosity + 0.5))


def reply_text(
    kind: Literal["reply", "ask", "status", "no_status"],
    language: str,
    *,
    verbosity: float = 1.0,
    order_id: str = "",
    status: str = "",
) -> str:
    """The free-text answer of ``kind`` in ``language`` (English when it has no templates)."""
    templates = _TEMPLATES.get(language, _TEMPLATES["en"])
    base = [sentence.format(order_id=order_id, status=status) for sentence in templates[kind]]
    count = _sentence_count(kind, verbosity)
    extras = templates["extras"]
    sentences = base[:count] + [extras[i % len(extras)] for i in range(count - len(base))]
    separator = "" if language in ("zh", "ja") else " "
    return separator.join(sentences)


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def _system_text(messages: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(
        content_text(message.get("content"))
        for message in messages
        if message.get("role") in ("system", "developer")
    )


def _prompt_tokens(request: ChatRequest) -> int:
    total = 2  # priming of the assistant turn
    for message in request.messages:
        text = content_text(message.get("content"))
        if message.get("tool_calls"):
            text += json.dumps(message["tool_calls"], sort_keys=True)
        total += 4 + estimate_tokens(text)
    if request.tools:
        total += estimate_tokens(json.dumps(list(request.tools), sort_keys=True))
    return total


def _order_id_tool(tools: Sequence[Mapping[str, Any]]) -> str | None:
    """Name of the first declared function with a parameter called ``order_id``."""
    for tool in tools:
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        if isinstance(properties, dict) and "order_id" in properties:
            return str(function["name"])
    return None


def _declared_tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    names = []
    for tool in tools:
        function = tool.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def _summary(text: str, verbosity: float) -> str:
    collapsed = " ".join(text.split())
    limit = max(10, math.floor(_SUMMARY_CHARS * verbosity + 0.5))
    return collapsed if len(collapsed) <= limit else collapsed[:limit].rstrip() + "…"


def _random_id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice(_ID_ALPHABET) for _ in range(24))


def _finish_text(
    task: Task,
    content: str,
    request: ChatRequest,
    language: str | None,
    reply_language: str | None,
) -> Answer:
    finish_reason: FinishReason = "stop"
    if request.max_tokens is not None and estimate_tokens(content) > request.max_tokens:
        content = truncate_to_tokens(content, request.max_tokens)
        finish_reason = "length"
    return Answer(
        task=task,
        content=content,
        finish_reason=finish_reason,
        prompt_tokens=_prompt_tokens(request),
        completion_tokens=max(1, estimate_tokens(content)),
        language=language,
        reply_language=reply_language,
    )


def _tool_call_answer(
    request: ChatRequest,
    tool_name: str,
    order_id: str,
    faults: Faults,
    rng: random.Random,
    language: str | None,
) -> Answer:
    # Drawn even without drift so that switching drift on does not shift the later draws.
    call_id = _random_id(rng, "call_")
    drift_mode = rng.choice(("name", "arguments"))
    other_names = [name for name in _declared_tool_names(request.tools) if name != tool_name]
    wrong_name = rng.choice(other_names) if other_names else tool_name + "s"
    name = tool_name
    arguments = json.dumps({"order_id": order_id})
    if faults.tool_drift:
        if drift_mode == "name":
            name = wrong_name
        else:
            # Unparseable: the closing brace is missing, as when a model stops mid-object.
            arguments = arguments[:-1]
    finish_reason: FinishReason = "tool_calls"
    if request.max_tokens is not None:
        budget = request.max_tokens - estimate_tokens(name)
        if estimate_tokens(arguments) > budget:
            arguments = truncate_to_tokens(arguments, max(0, budget))
            finish_reason = "length"
    return Answer(
        task="tool_call",
        content=None,
        finish_reason=finish_reason,
        prompt_tokens=_prompt_tokens(request),
        completion_tokens=max(1, estimate_tokens(name) + estimate_tokens(arguments)),
        tool_calls=(ToolCall(id=call_id, name=name, arguments=arguments),),
        language=language,
    )


def _tool_result(message: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(order_id, status)`` from a tool message whose content is a JSON object."""
    try:
        data = json.loads(content_text(message.get("content")))
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    order_id, status = data.get("order_id"), data.get("status")
    return (
        str(order_id) if isinstance(order_id, (str, int)) else None,
        str(status) if isinstance(status, (str, int, float)) else None,
    )


def answer_request(
    request: ChatRequest, faults: Faults, rng: random.Random, *, verbosity: float = 1.0
) -> Answer:
    """Answer ``request`` as the simulated model would, with ``faults`` applied.

    Task precedence: a request with ``tools`` is a tool task; otherwise JSON mode (a
    ``response_format`` of ``json_object``/``json_schema`` or the word "JSON" in a system message)
    is the classification task; anything else gets a support reply in the user's language.
    """
    user_text = _last_user_text(request.messages)
    language = detect_language(user_text)
    answer_language = "en" if faults.language_drift or language is None else language
    reply_language = answer_language if answer_language in _TEMPLATES else "en"
    if faults.content is not None:
        return _finish_text("scripted", faults.content, request, language, None)

    if request.tools:
        last = request.messages[-1]
        if last.get("role") == "tool":
            order_id, status = _tool_result(last)
            if order_id is None:
                match = ORDER_ID_RE.search(user_text)
                order_id = match.group(0) if match else None
            if status is None or order_id is None:
                text = reply_text("no_status", reply_language, verbosity=verbosity)
            else:
                text = reply_text(
                    "status",
                    reply_language,
                    verbosity=verbosity,
                    order_id=order_id,
                    status=status,
                )
            return _finish_text("tool_summary", text, request, language, reply_language)
        if last.get("role") == "user" and request.tool_choice != "none":
            match = ORDER_ID_RE.search(user_text)
            tool_name = _order_id_tool(request.tools)
            if match is None:
                text = reply_text("ask", reply_language, verbosity=verbosity)
                return _finish_text("tool_ask", text, request, language, reply_language)
            if tool_name is not None:
                return _tool_call_answer(request, tool_name, match.group(0), faults, rng, language)

    json_mode = request.response_format_type in ("json_object", "json_schema") or bool(
        _JSON_WORD_RE.search(_system_text(request.messages))
    )
    if json_mode:
        category, priority = classify(user_text)
        # Drawn unconditionally so that each fault's switch leaves the other draws unchanged.
        wrong_category = rng.choice([other for other in CATEGORIES if other != category])
        breakage_mode = rng.choice(("fence", "truncate"))
        if faults.misclassify:
            category = wrong_category
        document = json.dumps(
            {
                "category": category,
                "priority": priority,
                "language": language,
                "summary": _summary(user_text, verbosity),
            },
            ensure_ascii=False,
        )
        if faults.json_breakage:
            if breakage_mode == "fence":
                document = f"```json\n{document}\n```"
            else:
                document = document[: len(document) // 2]
        return _finish_text("classification", document, request, language, None)

    text = reply_text("reply", reply_language, verbosity=verbosity)
    return _finish_text("reply", text, request, language, reply_language)
