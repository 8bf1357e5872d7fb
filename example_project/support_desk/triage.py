"""Ticket triage: the model labels a ticket with category, priority, language and a summary.

The model is asked for a JSON object (JSON mode plus a system prompt that says so). An answer that
is not valid JSON, or not the object we asked for, gets one retry with a repair instruction; if
that fails too, a keyword rule labels the ticket and the fallback is reported
(``gateway.note_fallback``), so a model that breaks its JSON more often shows up even when the
rule happens to guess right.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from support_desk.gateway import default_gateway

if TYPE_CHECKING:
    from pytest_modelgate.gateway import Gateway

__all__ = [
    "CATEGORIES",
    "PRIORITIES",
    "SUMMARY_MAX_CHARS",
    "Triage",
    "TriageFormatError",
    "parse_triage",
    "triage_ticket",
]

WORKFLOW = "ticket_triage"

CATEGORIES: tuple[str, ...] = ("refund", "billing", "shipping", "account", "technical", "other")
PRIORITIES: tuple[str, ...] = ("urgent", "high", "normal")
# The ticket list shows the summary in one column of this width.
SUMMARY_MAX_CHARS = 80

SYSTEM_PROMPT = f"""\
You triage customer support tickets for an online shop.
Answer with one JSON object and nothing else (no code fences, no comments), with these keys:
- "category": one of {", ".join(CATEGORIES)}
- "priority": one of {", ".join(PRIORITIES)}
- "language": the ISO 639-1 code of the language the ticket is written in
- "summary": the gist of the ticket in at most {SUMMARY_MAX_CHARS} characters"""

REPAIR_INSTRUCTION = (
    "Your previous answer could not be parsed. Reply with the JSON object only: it must start "
    "with { and end with }, and contain exactly the keys category, priority, language, summary."
)


class TriageFormatError(ValueError):
    """The model's answer is not the JSON object the triage prompt asks for."""


@dataclass(frozen=True)
class Triage:
    """How a ticket is routed: queue (category), urgency, language and a one-line summary.

    ``source`` says who decided: the model, or the keyword rule after two unusable answers.
    """

    category: str
    priority: str
    language: str
    summary: str
    source: Literal["model", "fallback"] = "model"


def parse_triage(text: str) -> Triage:
    """Validate the model's answer into a ``Triage``; raise ``TriageFormatError`` if it is not one.

    Code fences are not stripped: JSON mode was requested, so a fenced answer is a broken one.
    """
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise TriageFormatError(f"not valid JSON ({exc}): {text[:120]!r}") from None
    if not isinstance(data, dict):
        raise TriageFormatError(f"expected a JSON object, got {type(data).__name__}")
    missing = [key for key in ("category", "priority", "language", "summary") if key not in data]
    if missing:
        raise TriageFormatError(f"missing keys: {', '.join(missing)}")
    category, priority = data["category"], data["priority"]
    language, summary = data["language"], data["summary"]
    if category not in CATEGORIES:
        raise TriageFormatError(f"unknown category {category!r}")
    if priority not in PRIORITIES:
        raise TriageFormatError(f"unknown priority {priority!r}")
    if not isinstance(language, str) or not language.strip():
        raise TriageFormatError(f"language must be a language code, got {language!r}")
    if not isinstance(summary, str) or not summary.strip():
        raise TriageFormatError(f"summary must be non-empty text, got {summary!r}")
    return Triage(category, priority, language.strip().lower(), summary.strip())


def triage_ticket(text: str, *, key: str | None = None, gateway: Gateway | None = None) -> Triage:
    """Label a support ticket with the model; fall back to keywords if its JSON stays broken.

    ``key`` (the customer's id) keeps a customer on one arm of a canary; ``gateway`` defaults to
    the app's (``support_desk.gateway.default_gateway``).
    """
    gateway = gateway or default_gateway()
    params: dict[str, Any] = {"response_format": {"type": "json_object"}, "temperature": 0}
    reply = gateway.chat(WORKFLOW, _messages(SYSTEM_PROMPT, text), key=key, **params)
    try:
        return parse_triage(reply.text)
    except TriageFormatError:
        pass
    # The repair goes into the system prompt, not a new user turn: the ticket must stay the last
    # thing the customer said, or the model would triage our instruction instead.
    repair_prompt = f"{SYSTEM_PROMPT}\n\n{REPAIR_INSTRUCTION}"
    repair = gateway.chat(WORKFLOW, _messages(repair_prompt, text), key=key, **params)
    try:
        return parse_triage(repair.text)
    except TriageFormatError:
        gateway.note_fallback(WORKFLOW, "triage: unparseable JSON", key=key)
        return keyword_triage(text)


def _messages(system: str, ticket: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": ticket}]


# The fallback rule: English keywords only, first match wins. It keeps tickets moving when the
# model is unusable; it is not meant to be as good as the model.
_FALLBACK_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("refund", ("refund", "money back")),
    ("billing", ("invoice", "charged", "payment", "bill")),
    ("shipping", ("package", "delivery", "tracking", "shipping")),
    ("account", ("password", "log in", "login", "account")),
    ("technical", ("error", "crash", "bug", "broken")),
)
_FALLBACK_URGENT = ("urgent", "asap", "immediately")
_KANA = re.compile(r"[\u3041-\u30ff]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_SPANISH_MARKS = re.compile(r"[¿¡ñáéíóú]", re.IGNORECASE)


def keyword_triage(text: str) -> Triage:
    """The fallback: label a ticket by keywords and script, without a model."""
    lowered = text.lower()
    category = next(
        (name for name, words in _FALLBACK_RULES if any(word in lowered for word in words)),
        "other",
    )
    priority = "urgent" if any(word in lowered for word in _FALLBACK_URGENT) else "normal"
    if _KANA.search(text):
        language = "ja"
    elif _HAN.search(text):
        language = "zh"
    elif _SPANISH_MARKS.search(text):
        language = "es"
    else:
        language = "en"
    summary = " ".join(text.split())[:SUMMARY_MAX_CHARS]
    return Triage(category, priority, language, summary, source="fallback")
