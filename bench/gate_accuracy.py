"""How often the gate's statistical judge is right, on the simulator's behaviour model.

Each run builds a suite of ``n`` support-desk cases shaped like ``example_project/`` (by default
40% JSON ticket triage, 25% order lookups through a ``lookup_order`` tool call, 35% streamed
customer replies; prompts in en, zh, ja, es and, for replies, fr and de), plays every case on a
stable model and on a candidate, and asks ``PairedJudge`` (default margins) for a verdict:

A/A
    the candidate is a twin of the stable model: the same behaviour under another simulated
    model name, so the same rates with independent random draws. Any ``fail`` is a false fail
    (target: at most 1% of the runs).
injected regressions
    the candidate is that same twin (same name and seed: the same random draws, which the
    simulator keeps when a rate rises) with one change, listed in ``INJECTIONS`` and printed with
    the table: JSON breakage (a 15-point JSON validity drop), tool-call drift, language drift in
    Japanese only, a burst of 5xx errors, latency x1.5 and cost x1.5. A ``fail`` is a detection
    (target for the JSON drop at n = 100: at least 95%); "names it" says whether the injected
    metric was among the regressions.

Every row runs at n = 100 and n = 300 cases and is judged twice on the same records: paired by
case (the gate's judge) and unpaired (``paired=False``), to show what pairing buys. The inconclusive
rate is printed for every row, then the status and p-values of the comparison that should catch
each injection, and what kept healthy (A/A) candidates from passing.

No HTTP: the answers come from the simulator's own code in-process. ``_SimulatorCore.plan``
draws status, latency, time to first token and faults from the scenario seed, model name,
request body and occurrence; ``answer_request`` writes the answer. Each attempt becomes a
``CallRecord`` (usage, cost at a fixed price, JSON validity, tool calls, languages, and the
contract checks of the workflow's ``model_contract`` run by ``contracts.check_reply``), each case
a ``TestRecord`` per arm. A 429 or 5xx is retried up to twice, every attempt recorded. A case
passes as the example project's assertions say: triage when the JSON parses and has the expected
category and priority (2 ticket templates in 25 are ones where the team's routing rule and the
model disagree: they fail on both arms, as real suites have such cases); an order lookup when the
tool call is ``lookup_order`` with the right id and the answer states the status in the customer's
language; a reply when it is in the customer's language and was not cut by ``max_tokens``.

The simulator draws faults per request, independently of the case. Real models fail the same hard
cases on both arms, which is what pairing removes, so a quarter of the cases are hard: played with
higher fault rates (``QUALITY``) on both arms alike.

Suites (``SUITES``): ``mixed`` (the mix above, every injection); ``json-only`` (every case a JSON
triage case, the JSON target's setting: the stable model breaks 0.5% of its JSON, as in JSON
mode); ``json-noisy`` (the same cases and draws against a stable model breaking 2.4%).

The judge resamples 1000 times, as the gate does by default (``--resamples`` changes it).
The exit status is 0 whatever the rates (this reports, it does not gate); 1 when a step fails.

Usage::

    .venv/bin/python bench/gate_accuracy.py                # 200 A/A, 80 per regression, per size
    .venv/bin/python bench/gate_accuracy.py --quick        # a smoke check in about half a minute
    .venv/bin/python bench/gate_accuracy.py --mix triage=1 --regression-runs 100 --markdown
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from hashlib import sha256
from pathlib import Path
from typing import Any

from pytest_modelgate.calls.contracts import applied_checks, check_reply
from pytest_modelgate.calls.langdetect import detect_language as _detect_language
from pytest_modelgate.calls.protocol import ParsedCompletion, ParsedToolCall, is_json_text
from pytest_modelgate.calls.records import Arm, CallRecord, Outcome, TestRecord, Usage
from pytest_modelgate.config.settings import GateLimits
from pytest_modelgate.markers import ModelContract
from pytest_modelgate.simulator.scenario import LatencySpec, ModelBehaviour, Scenario
from pytest_modelgate.simulator.server import _random_id, _SimulatorCore
from pytest_modelgate.simulator.tasks import (
    CATEGORIES,
    PRIORITIES,
    Answer,
    answer_request,
    classify,
    parse_chat_request,
)

# The example project's package (support_desk, standard library only): the suite plays its prompts.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "example_project"))
from support_desk import orders as _example_orders
from support_desk import replies as _example_replies
from support_desk import triage as _example_triage

TARGET_FALSE_FAIL = 0.01
TARGET_DETECTION = 0.95
TARGET_ROW = ("json", 100)
SIZES = (100, 300)
DEFAULT_RUNS = 200
DEFAULT_REGRESSION_RUNS = 80
QUICK_RUNS = 5
# As the gate's default (gate: resamples in modelgate.yaml).
DEFAULT_RESAMPLES = 1000
QUICK_RESAMPLES = 100
MAX_RETRIES = 2
# A failed attempt answers fast; its latency is not part of the latency metrics.
ERROR_LATENCY_MS = 5.0
# USD per million tokens (DeepSeek-like list prices).
PRICE_INPUT = 0.27
PRICE_OUTPUT = 1.10
STABLE_NAME = "sim-stable"
# The twin and every injected candidate share this name: they draw the same random numbers.
CANDIDATE_NAME = "sim-candidate"
WORKFLOWS = ("triage", "orders", "replies")
Mix = tuple[tuple[str, int], ...]
# The workflow mix of a suite, as weights (the example project's proportions).
DEFAULT_MIX: Mix = (("triage", 8), ("orders", 5), ("replies", 7))
JSON_ONLY_MIX: Mix = (("triage", 1),)
# A fixed clock for started_at (2026-01-01T00:00:00Z), so records are reproducible.
EPOCH = 1767225600.0


# Reply texts come from templates and every prompt is played on several arms: most detections
# repeat, and detection is most of the time spent outside the judge.
detect_language = lru_cache(maxsize=1 << 16)(_detect_language)


class BenchError(Exception):
    """A step that did not work: the figures would mean nothing."""


# ------------------------------------------------------------------------------------------------
# Behaviour of the models

# What a call's latency looks like over the whole suite (lognormal: median and p95, ms).
LATENCY_MS = (600.0, 1400.0)
TTFT_MS = (250.0, 550.0)
# Real latency depends on the case as much as on the call: a long ticket, a long answer, a tool
# round trip are slow on any model. So each case carries a lognormal slowness factor (this
# log-scale standard deviation), the same on both arms, and each call adds its own noise; the
# noise is narrowed so that a call's latency over the suite keeps the distribution above. The
# shared part is what a paired comparison cancels and an unpaired one cannot.
CASE_LATENCY_SIGMA = 0.35
_Z95 = 1.6448536269514722


def _per_call(median: float, p95: float) -> LatencySpec:
    """The per-call spread left once the case's slowness takes its share of the variance."""
    total = math.log(p95 / median) / _Z95
    sigma = math.sqrt(total * total - CASE_LATENCY_SIGMA * CASE_LATENCY_SIGMA)
    return LatencySpec(median=median, p95=median * math.exp(_Z95 * sigma))


# Latency, errors and everything not about answer quality: the same for every case.
BASE = ModelBehaviour(
    latency_ms=_per_call(*LATENCY_MS),
    ttft_ms=_per_call(*TTFT_MS),
    rate_limit_rate=0.005,
    server_error_rate=0.01,
)
# The simulator draws its faults per request, whatever the case; real models fail the same hard
# cases on both arms, and that shared difficulty is what pairing by case removes. So a share of
# the cases is hard, and each kind is played with its own fault rates, on both arms alike.
# Triage asks for JSON mode (response_format json_object), in which providers constrain the
# output to JSON: what still breaks is a reply cut at the token limit or a provider quirk
# (DeepSeek's whitespace-only content), so the stable model breaks 0.5% of its JSON on average.
# JSON_BREAKAGE_NOISY, a stable model breaking 2.4% (the bench's default before 2026-11-26),
# is played by a suite of its own: the same drop is harder to see against a noisier baseline.
HARD_SHARE = 0.25
# A stable rate of broken JSON on (easy, hard) cases.
JsonBreakage = tuple[float, float]
JSON_BREAKAGE_NOISY: JsonBreakage = (0.005, 0.08)
QUALITY: dict[bool, dict[str, float]] = {
    False: {
        "json_breakage": 0.001,
        "misclassify": 0.01,
        "tool_drift": 0.005,
        "language_drift": 0.005,
    },
    True: {"json_breakage": 0.017, "misclassify": 0.12, "tool_drift": 0.08, "language_drift": 0.06},
}


def _mean_rate(name: str) -> float:
    return (1 - HARD_SHARE) * QUALITY[False][name] + HARD_SHARE * QUALITY[True][name]


def _scaled(spec: LatencySpec, factor: float) -> LatencySpec:
    p95 = spec.median if spec.p95 is None else spec.p95
    return LatencySpec(median=spec.median * factor, p95=p95 * factor)


@dataclass(frozen=True)
class Injection:
    """One regression injected into the candidate, and the comparison expected to catch it."""

    key: str
    label: str
    size: str
    # Added to the candidate's fault rates, easy and hard cases alike.
    add: Mapping[str, float] = field(default_factory=dict)
    latency_factor: float = 1.0
    price_factor: float = 1.0
    # The change applies to cases in this prompt language only.
    language: str | None = None
    # The comparison that should catch it: metric name and scope.
    metric: str = ""
    scope: str = "overall"
    # A detection "names the injection" when one regression's metric contains one of these, or
    # is in ``scope`` when that is a slice.
    expects: tuple[str, ...] = ()

    def applies_to(self, case: Case) -> bool:
        """Whether the change touches this case."""
        return self.language is None or case.language == self.language


INJECTIONS: tuple[Injection, ...] = (
    Injection(
        "json",
        "JSON breakage",
        f"json_breakage +0.15 (mean {_mean_rate('json_breakage'):.3f} -> "
        f"{_mean_rate('json_breakage') + 0.15:.3f}) on triage calls: a 15-point JSON validity drop",
        add={"json_breakage": 0.15},
        metric="json_validity",
        expects=("json",),
    ),
    Injection(
        "tools",
        "tool drift",
        f"tool_drift +0.15 (mean {_mean_rate('tool_drift'):.3f} -> "
        f"{_mean_rate('tool_drift') + 0.15:.3f}): wrong tool name or broken arguments",
        add={"tool_drift": 0.15},
        metric="tool_call_accuracy",
        expects=("tool",),
    ),
    Injection(
        "language",
        "language drift, ja only",
        f"language_drift +0.45 on Japanese prompts only (mean {_mean_rate('language_drift'):.3f}"
        f" -> {_mean_rate('language_drift') + 0.45:.3f}); other languages unchanged",
        add={"language_drift": 0.45},
        language="ja",
        metric="language_match",
        scope="language:ja",
        expects=("language",),
    ),
    Injection(
        "errors",
        "error burst",
        f"server_error_rate {BASE.server_error_rate:.2f} -> "
        f"{BASE.server_error_rate + 0.07:.2f} (500/503, retried up to {MAX_RETRIES} times)",
        add={"server_error_rate": 0.07},
        metric="error_rate",
        expects=("error",),
    ),
    Injection(
        "latency",
        "latency x1.5",
        "latency and TTFT distributions x1.5 (median 600 -> 900 ms, p95 1400 -> 2100 ms)",
        latency_factor=1.5,
        metric="latency_p50_ms",
        expects=("latency", "ttft"),
    ),
    Injection(
        "cost",
        "cost x1.5",
        "price per token x1.5 (same tokens)",
        price_factor=1.5,
        metric="cost_per_call_usd",
        expects=("cost",),
    ),
)
INJECTION_BY_KEY = {injection.key: injection for injection in INJECTIONS}


def behaviour_for(
    hard: bool, injection: Injection | None, json_breakage: JsonBreakage | None = None
) -> ModelBehaviour:
    """The simulated model for one kind of case, with the injection applied (None: none).

    ``json_breakage`` (easy, hard) replaces QUALITY's stable rates of broken JSON.
    """
    update: dict[str, Any] = dict(QUALITY[hard])
    if json_breakage is not None:
        update["json_breakage"] = json_breakage[hard]
    if injection is not None:
        for name, delta in injection.add.items():
            current = update[name] if name in update else getattr(BASE, name)
            update[name] = min(1.0, current + delta)
        if injection.latency_factor != 1.0:
            update["latency_ms"] = _scaled(BASE.latency_ms, injection.latency_factor)
            update["ttft_ms"] = _scaled(BASE.ttft_ms, injection.latency_factor)
    # Validated, so that an impossible injection fails here rather than deep in a draw.
    return ModelBehaviour.model_validate({**BASE.model_dump(), **update})


# ------------------------------------------------------------------------------------------------
# The suite: the example project's own prompts and tool (imported, so they cannot drift apart)

TRIAGE_SYSTEM = _example_triage.SYSTEM_PROMPT
ORDERS_SYSTEM = _example_orders.SYSTEM_PROMPT
REPLIES_SYSTEM = _example_replies.SYSTEM_PROMPT
MAX_REPLY_TOKENS = _example_replies.MAX_REPLY_TOKENS
LOOKUP_ORDER_TOOL: dict[str, Any] = _example_orders.LOOKUP_ORDER_TOOL
NOT_FOUND = _example_orders.NOT_FOUND
ORDER_STATUSES = ("shipped", "delivered", "processing", "cancelled", "refunded")

# (language, ticket, the team's category or None for the classifier's own label). {n} and
# {order} make every case distinct. A category given here disagrees with the simulated model's
# classifier: such a ticket fails on both arms.
# fmt: off
TRIAGE_TEMPLATES: tuple[tuple[str, str, str | None], ...] = (
    ("en", "I returned the blender (order {order}) and still have not received my refund.", None),
    ("en", "I was charged twice for order {order}, please fix it immediately.", None),
    ("en", "My package {order} has not arrived and the tracking page shows no updates.", None),
    ("en", "I forgot my password and the reset email never comes (ticket {n}).", None),
    ("en", "The mobile app crashes every time I open the settings screen, error {n}.", None),
    ("en", "Do you have a store in Toronto where I can try the shoes on? Ticket {n}.", None),
    ("en", "Third time asking: where is my delivery {order}? I am really angry.", None),
    ("en", "The payment page shows a blank screen after I click pay (ticket {n}).", "technical"),
    ("zh", "我想申请退款，订单 {order} 收到的商品和描述的不一样。", None),
    ("zh", "我的信用卡被扣款两次，订单 {order}，请马上处理！", None),
    ("zh", "我的快递 {order} 一个星期了还没到，物流信息也不更新。", None),
    ("zh", "我忘记了登录密码，手机也收不到验证码。工单 {n}", None),
    ("zh", "应用一打开就崩溃，屏幕上显示未知错误 {n}。", None),
    ("ja", "注文 {order} の靴のサイズが合わないので、返金をお願いします。", None),
    ("ja", "先月の請求書が二通届いています。確認をお願いします。番号 {n}", None),
    ("ja", "一週間経っても荷物 {order} が届かないのですが、どうなっていますか。", None),
    ("ja", "パスワードを忘れてしまい、ログインできません。問い合わせ {n}", None),
    ("ja", "アプリを開くとエラー {n} が表示されて、先に進めません。", None),
    ("es", "Quiero un reembolso del pedido {order}, el producto llegó roto.", None),
    ("es", "Me han hecho un cobro duplicado en la tarjeta, pedido {order}.", None),
    ("es", "Mi paquete {order} todavía no ha llegado y ya pasó una semana.", None),
    ("es", "No puedo entrar en mi cuenta porque olvidé la contraseña ({n}).", None),
    ("es", "La aplicación no funciona desde la última actualización, error {n}.", None),
    ("es", "¿Tienen una tienda física en Madrid? Consulta {n}.", None),
    ("en", "Can I get an invoice for the refund you sent for order {order}?", "billing"),
)
# (language, message): with {order} an order lookup, without it a question that needs the number.
ORDER_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("en", "Hi, where is my order {order}? It was supposed to ship on Monday."),
    ("en", "Can you check order {order} for me? I have not heard anything."),
    ("en", "Where is my order? I ordered it a week ago."),
    ("zh", "你好，我的订单{order}现在是什么状态？"),
    ("zh", "请帮我查一下订单 {order} 的进度。"),
    ("zh", "我的订单到哪了？已经等了好几天了。"),
    ("ja", "注文番号{order}の配送状況を教えてください。"),
    ("ja", "{order} の注文はいつ発送されますか？"),
    ("ja", "注文した商品がまだ届きません。どうなっていますか？"),
    ("es", "Hola, ¿cuál es el estado de mi pedido {order}?"),
    ("es", "Mi pedido {order} no ha llegado todavía, ¿dónde está?"),
    ("es", "¿Dónde está mi pedido? Lo hice hace una semana."),
)
REPLY_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("en", "Thanks for the quick help yesterday with ticket {n}!"),
    ("en", "Can I change the delivery address for my next order? My customer number is {n}."),
    ("zh", "谢谢你们昨天的帮助！工单 {n}"),
    ("zh", "我可以修改下一个订单的收货地址吗？客户编号 {n}"),
    ("ja", "昨日は迅速に対応していただき、ありがとうございました。番号 {n}"),
    ("ja", "次の注文のお届け先を変更できますか？会員番号 {n}"),
    ("es", "¡Gracias por la ayuda tan rápida de ayer! Ticket {n}."),
    ("es", "¿Puedo cambiar la dirección de entrega de mi próximo pedido? Cliente {n}."),
    ("fr", "Merci pour votre aide rapide hier ! Ticket {n}."),
    ("fr", "Est-ce que je peux changer l'adresse de livraison de ma prochaine commande ? {n}"),
    ("de", "Vielen Dank für die schnelle Hilfe gestern! Ticket {n}."),
    ("de", "Kann ich die Lieferadresse für meine nächste Bestellung ändern? Kunde {n}."),
)
# fmt: on


@dataclass(frozen=True)
class Case:
    """One test case of the suite: what is sent and what the workflow's assertion expects."""

    case_id: str
    workflow: str
    language: str
    text: str
    # triage: (category, priority); orders: (order_id, status) or () without an id.
    expected: tuple[str, ...] = ()
    # Played with the hard fault rates (on both arms).
    hard: bool = False
    # Multiplies the latency and TTFT of every call of the case (on both arms).
    slowness: float = 1.0


def _suite(n: int, mix: Mix, rng: random.Random) -> list[Case]:
    """``n`` cases in the workflow mix, templates dealt in a shuffled order, ids unique."""
    total = sum(weight for _, weight in mix)
    counts = dict.fromkeys(WORKFLOWS, 0)
    for workflow, weight in mix:
        counts[workflow] = n * weight // total
    # Rounding leftovers go to the heaviest workflow.
    counts[max(mix, key=lambda item: item[1])[0]] += n - sum(counts.values())
    cases: list[Case] = []
    serial = rng.randrange(10_000, 90_000)

    def unique() -> tuple[int, str]:
        nonlocal serial
        serial += 1
        return serial, f"SO-{serial}"

    for index, template in enumerate(_dealt(TRIAGE_TEMPLATES, counts["triage"], rng)):
        language, pattern, team_category = template
        number, order = unique()
        text = pattern.format(n=number, order=order)
        category, priority = classify(text)
        labels = (team_category or category, priority)
        cases.append(Case(f"triage-{language}-{index:03d}", "triage", language, text, labels))
    for index, (language, pattern) in enumerate(_dealt(ORDER_TEMPLATES, counts["orders"], rng)):
        number, order = unique()
        text = pattern.format(n=number, order=order)
        expected: tuple[str, ...] = ()
        if "{order}" in pattern:
            expected = (order, _order_status(order))
        cases.append(Case(f"orders-{language}-{index:03d}", "orders", language, text, expected))
    for index, (language, pattern) in enumerate(_dealt(REPLY_TEMPLATES, counts["replies"], rng)):
        number, _ = unique()
        text = pattern.format(n=number)
        cases.append(Case(f"replies-{language}-{index:03d}", "replies", language, text))
    # Drawn after the texts, one pair per case in order: the difficulty does not shift them.
    return [
        replace(
            case,
            hard=rng.random() < HARD_SHARE,
            slowness=math.exp(rng.gauss(0.0, CASE_LATENCY_SIGMA)),
        )
        for case in cases
    ]


def _dealt(templates: Sequence[Any], count: int, rng: random.Random) -> list[Any]:
    """``count`` templates: whole shuffled rounds, so every template is used about equally."""
    dealt: list[Any] = []
    while len(dealt) < count:
        round_ = list(templates)
        rng.shuffle(round_)
        dealt.extend(round_)
    return dealt[:count]


def _order_status(order_id: str) -> str:
    """The fake order database: one order id in 8 is unknown."""
    number = int(order_id.split("-")[1])
    if number % 8 == 0:
        return NOT_FOUND
    return ORDER_STATUSES[number % len(ORDER_STATUSES)]


# ------------------------------------------------------------------------------------------------
# Playing a suite on one arm


class ArmPlayer:
    """Plays cases on one arm against in-process simulator cores and records every attempt.

    One core per kind of case (easy or hard, touched by the injection or not), all with the same
    seed and model name: a request draws the same numbers whichever core plays it, so the
    kinds differ only by their rates.
    """

    def __init__(
        self,
        *,
        arm: Arm,
        model: str,
        seed: int,
        injection: Injection | None = None,
        json_breakage: JsonBreakage | None = None,
    ) -> None:
        self.arm: Arm = arm
        self.model = model
        self.seed = seed
        self.injection = injection
        self.json_breakage = json_breakage
        self.price_factor = injection.price_factor if injection is not None else 1.0
        self._cores: dict[tuple[bool, bool], _Core] = {}
        self._clock = EPOCH

    def play(self, cases: Sequence[Case]) -> list[TestRecord]:
        """One TestRecord per case, in order."""
        return [self._play(case) for case in cases]

    def _core(self, case: Case) -> _Core:
        injected = self.injection is not None and self.injection.applies_to(case)
        key = (case.hard, injected)
        core = self._cores.get(key)
        if core is None:
            behaviour = behaviour_for(
                case.hard, self.injection if injected else None, self.json_breakage
            )
            core = self._cores[key] = _Core(self.seed, self.model, behaviour)
        return core

    def _play(self, case: Case) -> TestRecord:
        test = _TestRun(self, case, self._core(case))
        outcome, message = {
            "triage": _triage,
            "orders": _orders,
            "replies": _replies,
        }[case.workflow](test)
        return TestRecord(
            test_id=test.test_id,
            case_id=case.case_id,
            workflow=case.workflow,
            arm=self.arm,
            model=self.model,
            outcome=outcome,
            duration_s=sum((call.latency_ms or 0.0) for call in test.calls) / 1000,
            calls=tuple(test.calls),
            fallbacks=tuple(test.fallbacks),
            message=message,
            language=case.language,
        )

    def tick(self, seconds: float) -> float:
        """The synthetic wall clock: the start of the next attempt."""
        started = self._clock
        self._clock += seconds
        return started


class _Core:
    def __init__(self, seed: int, model: str, behaviour: ModelBehaviour) -> None:
        self.behaviour = behaviour
        self.core = _SimulatorCore(Scenario(seed=seed, models={model: behaviour}))


class _TestRun:
    """One case on one arm: its calls, with the client's retry rule."""

    def __init__(self, player: ArmPlayer, case: Case, core: _Core) -> None:
        self.player = player
        self.case = case
        self.core = core
        self.calls: list[CallRecord] = []
        self.fallbacks: list[str] = []
        self._next_index = 0
        self.prompt_language = detect_language(case.text)
        self.contract = CONTRACTS[case.workflow]
        self.test_id = f"tests/test_{case.workflow}.py::test_{case.workflow}[{case.case_id}]"

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> Answer | None:
        """Send one logical call; None when every attempt failed."""
        player = self.player
        body: dict[str, Any] = {"model": player.model, "messages": messages, **params}
        if params.get("stream"):
            body["stream_options"] = {"include_usage": True}
        request = parse_chat_request(body)
        call_index = self._next_index
        self._next_index += 1
        common: dict[str, Any] = {
            "test_id": self.test_id,
            "case_id": self.case.case_id,
            "arm": player.arm,
            "model": player.model,
            "call_index": call_index,
            "endpoint": "/v1/chat/completions",
            "streamed": request.stream,
        }
        for attempt in range(1, MAX_RETRIES + 2):
            plan = self.core.core.plan(player.model, body, stream=request.stream)
            if plan.status != 200:
                self.calls.append(
                    CallRecord(
                        **common,
                        attempt=attempt,
                        started_at=player.tick(ERROR_LATENCY_MS / 1000),
                        latency_ms=ERROR_LATENCY_MS,
                        status=plan.status,
                        error_kind="rate_limit" if plan.status == 429 else "server_error",
                        error_message=f"HTTP {plan.status} (simulated)",
                        prompt_language=self.prompt_language,
                    )
                )
                continue
            # The server draws the completion id first: the same draws, the same answer.
            _random_id(plan.rng, "chatcmpl-")
            answer = answer_request(
                request, plan.faults, plan.rng, verbosity=self.core.behaviour.verbosity
            )
            latency_ms = plan.latency_s * 1000 * self.case.slowness
            ttft_ms: float | None = None
            if request.stream:
                ttft_ms = plan.ttft_s * 1000 * self.case.slowness
                latency_ms = max(latency_ms, ttft_ms)
            usage = Usage(
                prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens,
                cached_tokens=0,
                reasoning_tokens=0,
                total_tokens=answer.prompt_tokens + answer.completion_tokens,
            )
            cost = (
                (answer.prompt_tokens * PRICE_INPUT + answer.completion_tokens * PRICE_OUTPUT)
                * player.price_factor
                / 1_000_000
            )
            text = answer.content or ""
            completion = ParsedCompletion(
                text=text,
                tool_calls=tuple(
                    ParsedToolCall(call.id, call.name, call.arguments) for call in answer.tool_calls
                ),
                finish_reason=answer.finish_reason,
                usage=usage,
                model=player.model,
            )
            checked = check_reply(self.contract, body, completion)
            self.calls.append(
                CallRecord(
                    **common,
                    attempt=attempt,
                    started_at=player.tick(latency_ms / 1000),
                    latency_ms=latency_ms,
                    ttft_ms=ttft_ms,
                    status=200,
                    usage=usage,
                    cost_usd=cost,
                    finish_reason=answer.finish_reason,
                    json_valid=is_json_text(text),
                    tool_calls=tuple(call.name for call in answer.tool_calls),
                    prompt_language=checked.prompt_language,
                    reply_language=checked.reply_language,
                    checks=applied_checks(self.contract, checked),
                    schema_valid=checked.schema_valid,
                    tool_calls_valid=checked.tool_calls_valid,
                    language_match=checked.language_match,
                    violations=checked.violations,
                )
            )
            return answer
        return None


# ------------------------------------------------------------------------------------------------
# The three workflows: their contracts and their assertions

TRIAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": {"enum": list(CATEGORIES)},
        "priority": {"enum": list(PRIORITIES)},
        "language": {"type": "string", "minLength": 1},
        "summary": {"type": "string", "minLength": 1},
    },
    "required": ["category", "priority", "language", "summary"],
}
# What each workflow's @pytest.mark.model_contract would say; checked by the gate's own code.
CONTRACTS: dict[str, ModelContract] = {
    "triage": ModelContract(json=True, schema=TRIAGE_SCHEMA, schema_source="inline"),
    "orders": ModelContract(tools=("lookup_order",), language="match"),
    "replies": ModelContract(language="match"),
}


def _triage_document(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _triage(test: _TestRun) -> tuple[Outcome, str | None]:
    messages = [
        {"role": "system", "content": TRIAGE_SYSTEM},
        {"role": "user", "content": test.case.text},
    ]
    answer = test.chat(messages, response_format={"type": "json_object"}, temperature=0)
    if answer is None:
        return "failed", "APIError: retries exhausted"
    document = _triage_document(answer.content or "")
    if document is None:
        return "failed", "TriageFormatError: not valid JSON"
    got = (document.get("category"), document.get("priority"))
    if got != test.case.expected:
        return "failed", f"AssertionError: {got} != {test.case.expected}"
    return "passed", None


def _tool_order_id(call: Any) -> str | None:
    if call.name != "lookup_order":
        return None
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        return None
    if not isinstance(arguments, dict) or set(arguments) != {"order_id"}:
        return None
    order_id = arguments["order_id"]
    return order_id if isinstance(order_id, str) else None


def _orders(test: _TestRun) -> tuple[Outcome, str | None]:
    case = test.case
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": ORDERS_SYSTEM},
        {"role": "user", "content": case.text},
    ]
    params = {"tools": [LOOKUP_ORDER_TOOL], "tool_choice": "auto", "temperature": 0}
    answer = test.chat(messages, **params)
    if answer is None:
        return "failed", "APIError: retries exhausted"
    if not case.expected:
        if answer.tool_calls:
            return "failed", "AssertionError: looked up an order without an id"
        if detect_language(answer.content or "") != case.language:
            return "failed", "AssertionError: reply not in the customer's language"
        return "passed", None
    if not answer.tool_calls:
        return "failed", "AssertionError: no lookup"
    call = answer.tool_calls[0]
    order_id = _tool_order_id(call)
    if order_id is None:
        test.fallbacks.append("orders: drifted tool call")
        return "failed", "AssertionError: fell back after a drifted tool call"
    expected_id, status = case.expected
    result = {"order_id": order_id, "status": _order_status(order_id)}
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    summary = test.chat(messages, **params)
    if summary is None:
        return "failed", "APIError: retries exhausted"
    text = summary.content or ""
    if order_id != expected_id or status not in text:
        return "failed", f"AssertionError: {status!r} not in {text[:60]!r}"
    if detect_language(text) != case.language:
        return "failed", "AssertionError: answer not in the customer's language"
    return "passed", None


def _replies(test: _TestRun) -> tuple[Outcome, str | None]:
    case = test.case
    messages = [
        {"role": "system", "content": REPLIES_SYSTEM},
        {"role": "user", "content": case.text},
    ]
    answer = test.chat(
        messages,
        stream=True,
        max_tokens=MAX_REPLY_TOKENS,
        temperature=0.3,
    )
    if answer is None:
        return "failed", "APIError: retries exhausted"
    text = (answer.content or "").strip()
    if not text or answer.finish_reason == "length":
        return "failed", "AssertionError: empty or truncated reply"
    if detect_language(text) != case.language:
        return "failed", "AssertionError: reply not in the customer's language"
    return "passed", None


# ------------------------------------------------------------------------------------------------
# One unit of work: one suite, its arms, their judgements


@dataclass(frozen=True)
class Suite:
    """A kind of suite the figures are measured on: its workflow mix and what is injected."""

    key: str
    title: str
    mix: Mix
    # Keys of the injections played on it, besides the A/A twin.
    injections: tuple[str, ...]
    # Each injection runs as often as the A/A comparison (--runs) rather than --regression-runs:
    # a target is measured on it.
    as_often_as_aa: bool = False
    # The stable rates of broken JSON instead of QUALITY's (--json-baseline sets both).
    json_breakage: JsonBreakage | None = None
    # Suites with the same slot draw the same cases and random numbers: only their rates differ.
    seed_slot: int = 0


SUITES: tuple[Suite, ...] = (
    Suite(
        "mixed",
        "the example project's mix: every injection",
        DEFAULT_MIX,
        tuple(INJECTION_BY_KEY),
    ),
    # The JSON target speaks of a 15-point JSON validity drop at n = 100: 100 cases whose replies
    # carry a JSON contract. In the mixed suite only 40 of 100 do, and 40 cases cannot show a
    # 15-point drop beyond a 1-point margin with 95% power whatever the test.
    Suite(
        "json-only",
        "every case a JSON triage case: the JSON detection target",
        JSON_ONLY_MIX,
        ("json",),
        as_often_as_aa=True,
        seed_slot=1,
    ),
    # The same cases and draws against a stable model that breaks 2.4% of its JSON: how the
    # target's figure depends on the stable model's own breakage, which no test can remove.
    Suite(
        "json-noisy",
        "json-only against a stable model breaking 2.4% of its JSON (not the target's setting)",
        JSON_ONLY_MIX,
        ("json",),
        as_often_as_aa=True,
        json_breakage=JSON_BREAKAGE_NOISY,
        seed_slot=1,
    ),
)


SUITES_BY_KEY = {suite.key: suite for suite in SUITES}


@dataclass(frozen=True)
class Task:
    """One seeded suite at one size: the A/A comparison and the injections asked for."""

    n: int
    index: int
    seed: int
    injections: tuple[str, ...]
    resamples: int | None
    suite: Suite


@dataclass(frozen=True)
class Verdicted:
    """What the judge said about one comparison, reduced to what the report needs."""

    suite: str
    row: str
    n: int
    paired: bool
    verdict: str
    # A fail whose regressions name the injected change.
    named: bool
    # "metric@scope" of each regression.
    regressions: tuple[str, ...]
    # Gated metrics left inconclusive at the overall scope.
    inconclusive_overall: tuple[str, ...]
    # The comparison expected to catch the injection: its status ("absent": not compared) and
    # its p-values before and after Holm's correction.
    key_status: str
    key_p: float | None
    key_p_adjusted: float | None
    # Its measured change (points for a rate, candidate / stable for a ratio): what the
    # injection came to in this run, sampling noise included.
    key_change: float | None
    # Comparisons in the Holm family of the run.
    family: int
    # CPU seconds of the judgement.
    judge_s: float


def _unit_seed(seed: int, n: int, index: int) -> int:
    return seed * 1_000_000 + n * 1_000 + index


def _judge_classes() -> tuple[Any, Any]:
    try:
        from pytest_modelgate.judge.model import RunData
        from pytest_modelgate.judge.paired import PairedJudge
    except ImportError as exc:
        raise BenchError(f"the statistical judge cannot be imported: {exc}") from exc
    return RunData, PairedJudge


def _arms(task: Task) -> Iterator[tuple[str, list[TestRecord], list[TestRecord]]]:
    """(row key, stable records, candidate records) for the task's comparisons."""
    cases = _suite(task.n, task.suite.mix, random.Random(f"cases\x1f{task.seed}"))
    baseline = task.suite.json_breakage
    stable = ArmPlayer(
        arm="stable", model=STABLE_NAME, seed=task.seed, json_breakage=baseline
    ).play(cases)
    twin = ArmPlayer(arm="candidate", model=CANDIDATE_NAME, seed=task.seed, json_breakage=baseline)
    yield "aa", stable, twin.play(cases)
    for key in task.injections:
        injection = INJECTION_BY_KEY[key]
        player = ArmPlayer(
            arm="candidate",
            model=CANDIDATE_NAME,
            seed=task.seed,
            injection=injection,
            json_breakage=baseline,
        )
        yield injection.key, stable, player.play(cases)


def _names_injection(injection: Injection, regressions: Sequence[Any]) -> bool:
    for regression in regressions:
        if any(part in regression.metric for part in injection.expects):
            return True
        if injection.scope != "overall" and regression.scope == injection.scope:
            return True
    return False


def _outcome(row: str, task: Task, paired: bool, judgement: Any, elapsed: float) -> Verdicted:
    injection = INJECTION_BY_KEY.get(row)
    key = None
    if injection is not None:
        key = next(
            (
                m
                for m in judgement.metrics
                if m.name == injection.metric and m.scope == injection.scope
            ),
            None,
        )
    return Verdicted(
        suite=task.suite.key,
        row=row,
        n=task.n,
        paired=paired,
        verdict=judgement.verdict,
        named=(
            injection is not None
            and judgement.verdict == "fail"
            and _names_injection(injection, judgement.regressions)
        ),
        regressions=tuple(f"{r.metric}@{r.scope}" for r in judgement.regressions),
        inconclusive_overall=tuple(
            m.name for m in judgement.metrics if m.status == "inconclusive" and m.scope == "overall"
        ),
        key_status="absent" if key is None else key.status,
        key_p=None if key is None else key.p_value,
        key_p_adjusted=None if key is None else key.p_adjusted,
        key_change=None if key is None else key.change,
        family=sum(m.p_adjusted is not None for m in judgement.metrics),
        judge_s=elapsed,
    )


def run_task(task: Task) -> tuple[list[Verdicted], float]:
    """Generate the task's arms and judge each comparison paired and unpaired.

    Returns the outcomes and the CPU seconds the task took (wall time depends on what else the
    machine runs; CPU time much less).
    """
    cpu_started = time.process_time()
    run_data, paired_judge = _judge_classes()
    options: dict[str, Any] = {}
    if task.resamples is not None:
        options["resamples"] = task.resamples
    # The judge's default margins: what a project that configures nothing gets.
    judges = {paired: paired_judge(paired=paired, **options) for paired in (True, False)}
    outcomes = []
    for row, stable, candidate in _arms(task):
        data = run_data(stable=stable, candidate=candidate)
        for paired, judge in judges.items():
            started = time.process_time()
            judgement = judge.judge(data)
            elapsed = time.process_time() - started
            outcomes.append(_outcome(row, task, paired, judgement, elapsed))
    return outcomes, time.process_time() - cpu_started


# ------------------------------------------------------------------------------------------------
# Figures


def wilson(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a rate (95% by default)."""
    if total == 0:
        return (math.nan, math.nan)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Tally:
    """The outcomes of one row, size and judge mode."""

    runs: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    named: int = 0
    causes: Counter[str] = field(default_factory=Counter)
    undecided: Counter[str] = field(default_factory=Counter)
    key_statuses: Counter[str] = field(default_factory=Counter)
    key_p: list[float] = field(default_factory=list)
    key_p_adjusted: list[float] = field(default_factory=list)
    key_changes: list[float] = field(default_factory=list)
    families: list[int] = field(default_factory=list)

    def add(self, outcome: Verdicted) -> None:
        self.runs += 1
        self.verdicts[outcome.verdict] += 1
        self.named += outcome.named
        if outcome.verdict == "fail":
            self.causes.update(outcome.regressions)
        self.undecided.update(outcome.inconclusive_overall)
        self.key_statuses[outcome.key_status] += 1
        if outcome.key_p is not None:
            self.key_p.append(outcome.key_p)
        if outcome.key_p_adjusted is not None:
            self.key_p_adjusted.append(outcome.key_p_adjusted)
        if outcome.key_change is not None:
            self.key_changes.append(outcome.key_change)
        self.families.append(outcome.family)

    @property
    def fails(self) -> int:
        return self.verdicts["fail"]


Tallies = Mapping[tuple[str, int, bool], Tally]


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def _row_label(row: str) -> str:
    return "A/A (twin)" if row == "aa" else INJECTION_BY_KEY[row].label


def _row_keys(tallies: Tallies) -> Iterator[tuple[str, int]]:
    sizes = sorted({key[1] for key in tallies})
    for row in ["aa", *INJECTION_BY_KEY]:
        for n in sizes:
            if (row, n, True) in tallies and (row, n, False) in tallies:
                yield row, n


def _table(tallies: Tallies) -> list[list[str]]:
    rows = [
        [
            "comparison",
            "n",
            "runs",
            "paired: fail",
            "95% CI",
            "names it",
            "inconcl.",
            "unpaired: fail",
            "names it",
            "inconcl.",
        ]
    ]
    for row, n in _row_keys(tallies):
        paired, unpaired = tallies[(row, n, True)], tallies[(row, n, False)]
        low, high = wilson(paired.fails, paired.runs)
        rows.append(
            [
                _row_label(row),
                str(n),
                str(paired.runs),
                _percent(paired.fails, paired.runs),
                f"{100 * low:.1f}-{100 * high:.1f}%",
                "-" if row == "aa" else _percent(paired.named, paired.runs),
                _percent(paired.verdicts["inconclusive"], paired.runs),
                _percent(unpaired.fails, unpaired.runs),
                "-" if row == "aa" else _percent(unpaired.named, unpaired.runs),
                _percent(unpaired.verdicts["inconclusive"], unpaired.runs),
            ]
        )
    return rows


def _print_table(rows: list[list[str]], *, markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(rows[0]) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(rows[0]))) + "|")
        for row in rows[1:]:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        print("  ".join(cells).rstrip())
        if number == 0:
            print("  ".join("-" * width for width in widths))


def _mean(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):.3g}" if values else "-"


def _median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2g}" if values else "-"


def _shares(counter: Counter[str], total: int, limit: int = 5) -> str:
    return (
        ", ".join(f"{name} {_percent(count, total)}" for name, count in counter.most_common(limit))
        or "-"
    )


def _print_details(tallies: Tallies) -> None:
    print()
    print(
        "the comparison that should catch each injection (status over the runs; median p-value "
        "before and after Holm; comparisons in the Holm family; its measured change, in points "
        "or as a ratio):"
    )
    for row, n in _row_keys(tallies):
        if row == "aa":
            continue
        injection = INJECTION_BY_KEY[row]
        for paired in (True, False):
            tally = tallies[(row, n, paired)]
            print(
                f"  {injection.label:<24} n={n:<4} {'paired  ' if paired else 'unpaired'} "
                f"{injection.metric}@{injection.scope}: "
                f"{_shares(tally.key_statuses, tally.runs)}; p {_median(tally.key_p)}, "
                f"Holm {_median(tally.key_p_adjusted)}; family {_median(tally.families)}; "
                f"measured change: mean {_mean(tally.key_changes)}"
            )
    print("A/A: gated overall metrics left inconclusive (share of runs):")
    for row, n in _row_keys(tallies):
        if row == "aa":
            for paired in (True, False):
                tally = tallies[(row, n, paired)]
                label = "paired  " if paired else "unpaired"
                print(f"  n={n:<4} {label} {_shares(tally.undecided, tally.runs, limit=8)}")
    print("A/A false fails, what failed (metric@scope x runs):")
    any_false = False
    for row, n in _row_keys(tallies):
        for paired in (True, False):
            tally = tallies[(row, n, paired)]
            if row == "aa" and tally.fails:
                any_false = True
                label = "paired  " if paired else "unpaired"
                causes = ", ".join(f"{c} x{k}" for c, k in tally.causes.most_common(6))
                print(f"  n={n:<4} {label} {causes}")
    if not any_false:
        print("  none")
    errors = sum(t.verdicts["error"] for t in tallies.values())
    if errors:
        print(f"verdict 'error' in {errors} judgement(s)")


def _print_targets(by_suite: Mapping[Suite, Tallies]) -> None:
    met_all = True
    for suite, tallies in by_suite.items():
        for (row, n, paired), tally in sorted(tallies.items()):
            if row != "aa" or not paired:
                continue
            met = tally.fails / tally.runs <= TARGET_FALSE_FAIL
            met_all &= met
            low, high = wilson(tally.fails, tally.runs)
            print(
                f"target A/A false-fail rate <= {TARGET_FALSE_FAIL:.0%} at n={n} ({suite.key}): "
                f"{_percent(tally.fails, tally.runs)} ({tally.fails}/{tally.runs}, 95% CI "
                f"{100 * low:.1f}-{100 * high:.1f}%): {'MET' if met else 'NOT MET'}"
            )
    key, n = TARGET_ROW
    # Judged where every case is a JSON case and the stable model is the default one when that
    # suite ran (see SUITES), else on the first suite that ran, whose JSON cases may be fewer
    # than n or whose stable model may differ: the line names the suite.
    targets = [(suite, t[(key, n, True)]) for suite, t in by_suite.items() if (key, n, True) in t]
    targets.sort(key=lambda item: (item[0].mix != JSON_ONLY_MIX, item[0].json_breakage is not None))
    if targets:
        suite, target = targets[0]
        # A detection counts when the verdict fails *on JSON validity*, not on something else.
        met = target.named / target.runs >= TARGET_DETECTION
        met_all &= met
        low, high = wilson(target.named, target.runs)
        print(
            f"target detection of the 15-point JSON validity drop at n={n} >= "
            f"{TARGET_DETECTION:.0%} ({suite.key}): {_percent(target.fails, target.runs)} fail "
            f"({target.fails}/{target.runs}); naming JSON {_percent(target.named, target.runs)} "
            f"(95% CI {100 * low:.1f}-{100 * high:.1f}%): {'MET' if met else 'NOT MET'}"
        )
        _print_reference(target)
        # The other JSON-only suites: the same cases against another stable model.
        for other_suite, other in targets[1:]:
            if other_suite.mix != JSON_ONLY_MIX:
                continue
            low, high = wilson(other.named, other.runs)
            print(
                f"not the target's setting: the same drop at n={n} ({other_suite.key}) naming JSON "
                f"{_percent(other.named, other.runs)} ({other.named}/{other.runs}, 95% CI "
                f"{100 * low:.1f}-{100 * high:.1f}%)"
            )
            _print_reference(other)
    else:
        print(f"target detection of the 15-point JSON validity drop at n={n}: not measured here")
    scope = "all" if targets else "those measured here"
    print(f"targets ({scope}): {'met' if met_all else 'NOT all met'}")


def _print_reference(target: Tally) -> None:
    """What a z-test with the true run-to-run standard error would flag, for comparison.

    Over the runs, the measured JSON validity change scatters around its mean; a one-sided
    z-test of "no worse than the margin" with that spread as a fixed standard error flags a run
    when its change is beyond ``margin + z * sd``. It is a yardstick, not a bound: the judge's
    interval follows each run's own discordant pairs, which shrink with the change, so it can
    flag runs this test does not (it does so on the default stable model).
    """
    changes = [change / 100 for change in target.key_changes]  # points -> fraction
    if len(changes) < 3:
        return
    sd = statistics.stdev(changes)
    margin = GateLimits().json_validity_max_drop or 0.0
    z = statistics.NormalDist().inv_cdf(0.975)
    threshold = -(margin + z * sd)
    share = sum(change < threshold for change in changes) / len(changes)
    mean = statistics.fmean(changes)
    print(
        f"  reference: the measured change was {100 * mean:+.1f} pts on average with a standard "
        f"error of {100 * sd:.1f} pts (its spread over the runs); a z-test with that error fixed "
        f"would flag {100 * share:.1f}% of these runs at the same 95% confidence"
    )


@dataclass(frozen=True)
class Plan:
    """What one invocation measures: the suites, their sizes, how many runs, how judged."""

    suites: Sequence[Suite]
    sizes: Sequence[int]
    # A/A runs per suite and size.
    runs: int
    # Runs per injection and size, for suites that are not measured as often as the A/A runs.
    regression_runs: int
    seed: int
    # None: the judge's default.
    resamples: int | None
    workers: int

    def runs_per_injection(self, suite: Suite) -> int:
        """How many runs each of ``suite``'s injections gets (0 when none is played)."""
        if not suite.injections:
            return 0
        return self.runs if suite.as_often_as_aa else self.regression_runs


def _tasks(plan: Plan) -> list[Task]:
    tasks = []
    for suite in plan.suites:
        per_injection = plan.runs_per_injection(suite)
        # Seeds depend on the suite's slot, not on which suites run (the mixed suite keeps the
        # ones it always had).
        for n in plan.sizes:
            for index in range(max(plan.runs, per_injection)):
                unit = _unit_seed(plan.seed, n, index) + 100_000 * suite.seed_slot
                tasks.append(
                    Task(
                        n=n,
                        index=index,
                        seed=unit,
                        injections=suite.injections if index < per_injection else (),
                        resamples=plan.resamples,
                        suite=suite,
                    )
                )
    # Big units first, so that the pool does not end waiting on one.
    tasks.sort(key=lambda task: (-task.n * (1 + len(task.injections)), task.index))
    return tasks


def _describe(plan: Plan) -> None:
    resamples = plan.resamples
    shown = "the judge's default" if resamples is None else str(resamples)
    print(
        f"gate accuracy: {plan.runs} A/A runs at each of n = {', '.join(map(str, plan.sizes))} "
        f"cases per suite; seed {plan.seed}; {plan.workers} process(es)"
    )
    if resamples is not None:
        print(
            f"judge: PairedJudge with default margins and {shown} bootstrap resamples (the "
            "gate's default is 1000)"
        )
    else:
        print("judge: PairedJudge with default margins and its default resamples")
    # The judge changes as it is developed: say which one these figures are about.
    import pytest_modelgate.judge.paired as statjudge

    source = Path(statjudge.__file__).read_bytes()
    print(f"judge source: {Path(statjudge.__file__).name} sha256 {sha256(source).hexdigest()[:12]}")
    print(
        f"python {platform.python_version()}, {platform.platform()}, {os.cpu_count()} CPU(s), "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
    )
    rates = ", ".join(f"{name} {_mean_rate(name):.3f}" for name in QUALITY[False])
    print(
        f"models: {HARD_SHARE:.0%} of the cases hard on both arms; stable (mean rates): {rates}; "
        f"429 {BASE.rate_limit_rate}, 5xx {BASE.server_error_rate}; latency over the suite "
        f"median {LATENCY_MS[0]:.0f} ms, p95 {LATENCY_MS[1]:.0f} ms (TTFT {TTFT_MS[0]:.0f} / "
        f"{TTFT_MS[1]:.0f} ms), of which a per-case slowness factor (lognormal, sigma "
        f"{CASE_LATENCY_SIGMA}) shared by both arms; price {PRICE_INPUT}/{PRICE_OUTPUT} USD per "
        "M tokens in/out"
    )
    for suite in plan.suites:
        total = sum(weight for _, weight in suite.mix)
        shares = ", ".join(f"{w} {100 * weight / total:.0f}%" for w, weight in suite.mix)
        played = (
            f"{suite.title}; {plan.runs_per_injection(suite)} runs per injection and size"
            if suite.injections
            else "A/A runs only (--aa-only)"
        )
        if suite.json_breakage is not None:
            played += f"; stable JSON breakage {_breakage(suite.json_breakage)}"
        print(f"suite {suite.key}: {shares}; {played}")
    print("injected regressions (the candidate is the A/A twin plus one change):")
    for injection in INJECTIONS:
        print(f"  {injection.label:<24} {injection.size}")
    for suite in plan.suites:
        if suite.json_breakage is not None:
            easy, hard = suite.json_breakage
            print(
                f"  (suite {suite.key}: JSON breakage {_breakage(suite.json_breakage)} -> "
                f"{_breakage((easy + 0.15, hard + 0.15))})"
            )


def _breakage(rates: JsonBreakage) -> str:
    easy, hard = rates
    if easy == hard:
        return f"{easy:.3f} on every case"
    mean = (1 - HARD_SHARE) * easy + HARD_SHARE * hard
    return f"{easy:.3f} easy, {hard:.3f} hard (mean {mean:.3f})"


def run(plan: Plan, *, markdown: bool) -> int:
    _judge_classes()
    _describe(plan)
    tasks = _tasks(plan)
    workers = plan.workers
    suites = plan.suites
    started = time.perf_counter()
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            batches = list(pool.imap_unordered(run_task, tasks, chunksize=1))
    else:
        batches = [run_task(task) for task in tasks]
    elapsed = time.perf_counter() - started
    by_key = {suite.key: suite for suite in suites}
    by_suite: dict[Suite, dict[tuple[str, int, bool], Tally]] = {suite: {} for suite in suites}
    judge_s = [outcome.judge_s for batch, _ in batches for outcome in batch]
    cpu_s = sum(cpu for _, cpu in batches)
    for batch, _ in batches:
        for outcome in batch:
            tallies = by_suite[by_key[outcome.suite]]
            tallies.setdefault((outcome.row, outcome.n, outcome.paired), Tally()).add(outcome)

    for suite, tallies in by_suite.items():
        print()
        print(f"== suite {suite.key}: {suite.title}")
        _print_table(_table(tallies), markdown=markdown)
        _print_details(tallies)
    print()
    print(
        "fail: verdict 'fail' (A/A: a false fail; otherwise a detection), with the Wilson 95% CI "
        "of the paired rate; names it: a fail whose regressions include the injected metric (or "
        "its slice); inconcl.: verdict 'inconclusive'; the rest passed. Unpaired: the same "
        "judge with paired=False on the same records."
    )
    print()
    _print_targets(by_suite)
    print(
        f"runtime {elapsed:.0f} s wall on {workers} process(es); CPU {cpu_s:.0f} s in all, of "
        f"which the judge {sum(judge_s):.0f} s ({len(judge_s)} judgements, "
        f"{statistics.mean(judge_s) * 1000:.0f} ms each on average) and the simulated runs "
        f"the rest"
    )
    return 0


def _sizes(text: str) -> tuple[int, ...]:
    """``100,300`` -> (100, 300) (argparse ``type``)."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected sizes such as 100,300") from None
    if not sizes or min(sizes) < 10:
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be at least 10 cases")
    return sizes


def _mix(text: str) -> Mix:
    """``triage=8,orders=5,replies=7`` -> the mix (argparse ``type``)."""
    mix: list[tuple[str, int]] = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in WORKFLOWS or not weight.strip().isdigit() or int(weight) < 1:
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected WORKFLOW=WEIGHT with a workflow among "
                f"{', '.join(WORKFLOWS)} and a weight of at least 1"
            )
        mix.append((name, int(weight)))
    if len({name for name, _ in mix}) != len(mix):
        raise argparse.ArgumentTypeError(f"{text!r}: a workflow is named twice")
    return tuple(mix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help=f"A/A runs per size (default {DEFAULT_RUNS}; {QUICK_RUNS} with --quick)",
    )
    parser.add_argument(
        "--regression-runs",
        type=int,
        default=None,
        help=f"runs per injected regression and size (default {DEFAULT_REGRESSION_RUNS}; "
        f"{QUICK_RUNS} with --quick)",
    )
    parser.add_argument("--seed", type=int, default=1, help="base seed (default 1)")
    parser.add_argument(
        "--resamples",
        type=int,
        default=None,
        help=f"bootstrap resamples of the judge (default {DEFAULT_RESAMPLES}, "
        f"{QUICK_RESAMPLES} with --quick; the gate uses 1000)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes (default 2, or 1 on a single CPU)",
    )
    parser.add_argument(
        "--mix",
        type=_mix,
        default=None,
        help="run one suite with these workflow weights and every injection, instead of the "
        "two default suites (the example project's triage=8,orders=5,replies=7 with every "
        "injection, and triage=1 with the JSON breakage); triage=1 makes every case a JSON case",
    )
    parser.add_argument(
        "--suite",
        choices=[suite.key for suite in SUITES],
        default=None,
        help="run one of the default suites only",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=SIZES,
        help=f"suite sizes, comma-separated (default {','.join(map(str, SIZES))})",
    )
    parser.add_argument(
        "--json-baseline",
        type=float,
        default=None,
        metavar="RATE",
        help="the stable model's rate of broken JSON on every case, easy or hard (default: "
        f"{QUALITY[False]['json_breakage']} easy, {QUALITY[True]['json_breakage']} hard); the "
        "injection adds 15 points to it",
    )
    parser.add_argument(
        "--aa-only",
        action="store_true",
        help="A/A runs only, no injection (to measure the false-fail rate over many runs)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke check: few runs, few resamples"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    options = parser.parse_args(argv)
    quick = options.quick
    runs = options.runs if options.runs is not None else QUICK_RUNS if quick else DEFAULT_RUNS
    regression_runs = options.regression_runs
    if regression_runs is None:
        regression_runs = QUICK_RUNS if quick else DEFAULT_REGRESSION_RUNS
    resamples = options.resamples
    if resamples is None:
        resamples = QUICK_RESAMPLES if quick else DEFAULT_RESAMPLES
    if min(runs, regression_runs, options.workers) < 1:
        parser.error("--runs, --regression-runs and --workers must be at least 1")
    if resamples < 100:
        parser.error("--resamples must be at least 100 (the judge's minimum)")
    try:
        suites = SUITES
        if options.suite is not None:
            suites = (SUITES_BY_KEY[options.suite],)
        if options.mix is not None:
            suites = (Suite("custom", "the mix given", options.mix, tuple(INJECTION_BY_KEY)),)
        if options.aa_only:
            suites = tuple(replace(suite, injections=()) for suite in suites)
        if options.json_baseline is not None:
            if not 0 <= options.json_baseline <= 0.85:
                parser.error("--json-baseline must be between 0 and 0.85")
            rates = (options.json_baseline, options.json_baseline)
            suites = tuple(replace(suite, json_breakage=rates) for suite in suites)
        plan = Plan(
            suites=suites,
            sizes=options.sizes,
            runs=runs,
            regression_runs=regression_runs,
            seed=options.seed,
            resamples=resamples,
            workers=options.workers,
        )
        return run(plan, markdown=options.markdown)
    except BenchError as exc:
        print(f"gate accuracy: FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
