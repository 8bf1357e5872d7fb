"""Shadow pairs as columns, and the per-case aggregates the paired judge takes from them.

A reading engine (``verdict/shadow.py``: DuckDB, or the streaming Python reader) turns every
pair of one route into a row of a ``PairTable``: numpy columns, no object per pair. Here the
rows are grouped by case, the shadow log's ``case`` (the SHA-256 of the messages: the same
question asked again is the same case, each asking a repeat of it), and each arm's
figures are aggregated per case (``judge.columns.arm_columns``) for
``PairedJudge.judge_aggregates``. The per-case view of the verdict (``cases_changed``) and the
whole-log figures come from the same rows, so a million pairs are judged without a record per
pair.

How a pair reads as the gate's records (what ``tests/integration/test_analyze.py`` judges
through the records path to compare): each side is one test of one call; the test passed when
the call succeeded and its contract held (``contract_ok`` not false); ``json_valid`` and
``schema_valid`` are the checks ``json`` and ``schema`` where logged; a side has usage when it
logged a token count; a side with a time to first token was streamed; an error kind this
version does not know counts as ``invalid_response``.
"""

from __future__ import annotations

import array
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, get_args, overload

import numpy as np
from numpy.typing import NDArray

from pytest_modelgate.calls.records import ErrorKind
from pytest_modelgate.judge.columns import ArmColumns, CaseAggregates, CaseColumns, arm_columns
from pytest_modelgate.judge.metrics import ArmMetrics
from pytest_modelgate.judge.model import CaseRef
from pytest_modelgate.judge.tables import (
    CHECK_ORDER,
    FAILED,
    PASSED,
    CallTable,
    TestTable,
    arm_metrics,
    fsum,
)

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Flags = NDArray[np.bool_]
Objects = NDArray[np.object_]
Codes = NDArray[np.int8]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ERROR_KINDS = frozenset(get_args(ErrorKind))
# Tri-state booleans (contract_ok, json_valid, schema_valid) as int8: not logged, false, true.
NOT_LOGGED = -1
# A pair's tool-call names are joined with this (a character no function name holds).
TOOL_SEPARATOR = "\x1f"
ARMS = (("stable", "user"), ("candidate", "shadow"))
# The numbers and tri-states of a side, in the order engines fill them.
NUMBERS = ("latency_ms", "ttft_ms", "cost_usd", "prompt_tokens", "completion_tokens")
FLAGS = ("contract_ok", "json_valid", "schema_valid")


@dataclass
class SideColumns:
    """One side of every pair (``user``: the stable arm; ``shadow``: the candidate)."""

    error: Objects  # the error kind (known to this version) or None
    numbers: dict[str, Floats]  # NUMBERS, NaN where not logged
    flags: dict[str, Codes]  # FLAGS, NOT_LOGGED / 0 / 1
    tools: Objects  # the tool-call names joined by TOOL_SEPARATOR, None for none
    reply_language: Objects  # str or None


@dataclass
class PairTable:
    """Every pair of one route and model pair, a row each, in any order."""

    case: Ints  # each pair's case: its index in ``case_ids``
    case_ids: Sequence[str]  # the cases' ids, sorted
    at: Floats  # microseconds since the epoch, NaN when unreadable
    language: Objects  # the prompt's language, str or None
    sides: dict[str, SideColumns]

    def __len__(self) -> int:
        return len(self.case)


class PackedStrings(Sequence[str]):
    """Many strings in one: their concatenation and each one's length (in characters). A
    million case ids take one string's memory, not a million objects'."""

    def __init__(self, text: str, lengths: Ints) -> None:
        self._text = text
        self._ends = np.cumsum(lengths)
        if len(lengths) and int(self._ends[-1]) != len(text):
            raise ValueError("the lengths do not add up to the text")

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        end = int(self._ends[index])
        start = int(self._ends[index - 1]) if index else 0
        return self._text[start:end]


def error_kind(value: Any) -> str | None:
    """A logged ``error_kind`` as the judge counts it: None for none, an unknown kind as
    ``invalid_response`` (a kind this version does not know still counts as a failed call)."""
    if value is None:
        return None
    text = str(value)
    return text if text in ERROR_KINDS else "invalid_response"


class PairRows:
    """The pure-Python engine's builder of a ``PairTable``: one ``add`` per pair, kept in
    typed arrays (8 bytes a number, one byte a flag); repeated strings are stored once."""

    def __init__(self) -> None:
        self._strings: dict[str, str] = {}
        self._cases: dict[str, int] = {}
        self.case = array.array("q")
        self.at = array.array("d")
        self.language: list[str | None] = []
        self.strings: dict[str, dict[str, list[str | None]]] = {
            arm: {"error": [], "tools": [], "reply": []} for arm, _ in ARMS
        }
        self.numbers = {arm: {n: array.array("d") for n in NUMBERS} for arm, _ in ARMS}
        self.flags = {arm: {n: array.array("b") for n in FLAGS} for arm, _ in ARMS}

    def _shared(self, text: str | None) -> str | None:
        return None if text is None else self._strings.setdefault(text, text)

    def add(self, pair: Mapping[str, Any]) -> None:
        """One pair (already checked by the reader: a dict with both sides' models)."""
        case = pair.get("case")
        name = str(case) if case is not None else f"pair-{len(self.case):07d}"
        self.case.append(self._cases.setdefault(name, len(self._cases)))
        self.at.append(timestamp(pair.get("at")))
        self.language.append(self._shared(_text(pair.get("prompt_language"))))
        for arm, side in ARMS:
            entry = pair[side]
            columns = self.strings[arm]
            columns["error"].append(self._shared(error_kind(entry.get("error_kind"))))
            for name, numbers in self.numbers[arm].items():
                numbers.append(_number(entry.get(name)))
            for name, flags in self.flags[arm].items():
                value = entry.get(name)
                flags.append(int(value) if isinstance(value, bool) else NOT_LOGGED)
            names = entry.get("tool_calls")
            tools = (
                TOOL_SEPARATOR.join(str(n) for n in names if n is not None)
                if isinstance(names, list)
                else ""
            )
            columns["tools"].append(self._shared(tools or None))
            columns["reply"].append(self._shared(_text(entry.get("reply_language"))))

    def table(self) -> PairTable:
        """The columns gathered so far."""
        sides = {
            arm: SideColumns(
                error=_objects(columns["error"]),
                numbers={n: np.array(v, dtype=np.float64) for n, v in self.numbers[arm].items()},
                flags={n: np.array(v, dtype=np.int8) for n, v in self.flags[arm].items()},
                tools=_objects(columns["tools"]),
                reply_language=_objects(columns["reply"]),
            )
            for arm, columns in self.strings.items()
        }
        names = list(self._cases)
        self._cases.clear()
        order = np.asarray(sorted(range(len(names)), key=names.__getitem__), dtype=np.int64)
        code = np.empty(len(names), dtype=np.int64)
        code[order] = np.arange(len(names), dtype=np.int64)
        ordered = [names[i] for i in order.tolist()]
        del names
        # Packed: a million ids in one string, not a million objects (as the DuckDB engine).
        case_ids = PackedStrings("".join(ordered), np.fromiter(map(len, ordered), np.int64))
        del ordered
        return PairTable(
            code[np.frombuffer(self.case, dtype=np.int64)] if len(self.case) else code[:0],
            case_ids,
            np.asarray(self.at, dtype=np.float64),
            _objects(self.language),
            sides,
        )


def _objects(values: Sequence[Any]) -> Objects:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float:
    """A logged number; NaN for none or for what is not a number (a boolean is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def timestamp(value: Any) -> float:
    """An ISO 8601 time (``at``) as microseconds since the epoch; NaN when it is not one. A
    time without an offset is UTC (as DuckDB reads it)."""
    from datetime import timedelta

    if not isinstance(value, str):
        return math.nan
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return math.nan
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return float((moment - _EPOCH) // timedelta(microseconds=1))


# ---------------------------------------------------------------------------------------------
# rows -> cases


@dataclass
class ShadowCases:
    """The pairs grouped by case: what the judge takes, and what the verdict shows besides."""

    aggregates: CaseAggregates
    cases: int
    timing: dict[str, dict[str, str | None]] = field(default_factory=dict)
    cases_changed: dict[str, Any] = field(default_factory=dict)
    whole_log: dict[str, Any] = field(default_factory=dict)


def group_by_case(table: PairTable, route: str, stable_model: str) -> ShadowCases:
    """The table's pairs as paired cases, each pair a repeat of its case in time order.

    The table is consumed: its columns are put in case order in place, and each arm's are let
    go as soon as they are aggregated (a million pairs' columns are most of the memory).
    """
    ids = table.case_ids
    n = len(ids)
    sides = table.sides
    # Cases in id order (the order the judge's cases have), a case's pairs in time order; ties
    # on time broken by the figures, so that both engines order the same pairs the same way.
    order = np.lexsort(
        (
            sides["candidate"].numbers["latency_ms"],
            sides["stable"].numbers["latency_ms"],
            table.at,
            table.case,
        )
    )
    code = table.case = table.case[order]
    table.at = table.at[order]
    language = table.language = table.language[order]
    for side in sides.values():
        _reorder(side, order)
    del order
    starts = np.searchsorted(code, np.arange(n))
    repeat = np.arange(len(code), dtype=np.int64) - starts[code]
    del starts
    has_language = np.flatnonzero(language != None)  # noqa: E711 (element-wise)
    languages: list[str | None] = [None] * n
    first_case, first_row = np.unique(code[has_language], return_index=True)
    for case, row in zip(first_case.tolist(), has_language[first_row].tolist(), strict=True):
        languages[case] = language[row]
    cases_changed = _cases_changed(sides, ids, code, repeat, route, languages)
    whole_log = _whole_log(sides)
    failed: dict[str, Flags] = {}
    columns: dict[str, ArmColumns] = {}
    metrics: dict[str, ArmMetrics] = {}
    timing: dict[str, dict[str, str | None]] = {}
    for arm, _ in ARMS:
        tests, calls = _tables(sides.pop(arm), code)
        failed[arm] = tests.outcome == FAILED
        metrics[arm] = arm_metrics(tests, calls)
        columns[arm] = arm_columns(tests, calls, n)
        for name, streamed_only in _TIMED:
            timing.setdefault(name, {})[arm] = _timing_source(calls, streamed_only)
        del tests, calls

    def refs(mask: Flags) -> tuple[CaseRef, ...]:
        rows = np.flatnonzero(mask)
        return tuple(
            sorted(
                CaseRef(ids[c], r)
                for c, r in zip(code[rows].tolist(), repeat[rows].tolist(), strict=True)
            )
        )

    s_failed, c_failed = failed["stable"], failed["candidate"]
    aggregates = CaseAggregates(
        columns=CaseColumns.of_arms(
            ids, [route] * n, languages, columns["stable"], columns["candidate"]
        ),
        stable=metrics["stable"],
        candidate=metrics["candidate"],
        failed=(refs(s_failed & c_failed), refs(c_failed & ~s_failed), refs(s_failed & ~c_failed)),
        stable_model=stable_model,
    )
    return ShadowCases(
        aggregates=aggregates,
        cases=n,
        timing=timing,
        cases_changed=cases_changed,
        whole_log=whole_log,
    )


def _reorder(side: SideColumns, rows: Ints) -> None:
    """``side``'s columns in the order of ``rows``, each old column let go as the next is made."""
    side.error = side.error[rows]
    for numbers in (side.numbers, side.flags):
        for name in list(numbers):
            numbers[name] = numbers[name][rows]  # type: ignore[assignment]
    side.tools = side.tools[rows]
    side.reply_language = side.reply_language[rows]


def _tables(side: SideColumns, case: Ints) -> tuple[TestTable, CallTable]:
    """One arm's test and call tables: each pair's side is a test of one call."""
    n = len(case)
    ok: Flags = side.error == None  # noqa: E711 (element-wise)
    contract = side.flags["contract_ok"]
    outcome = np.where(ok & (contract != 0), PASSED, FAILED).astype(np.int64)
    numbers = side.numbers
    prompt, completion = numbers["prompt_tokens"], numbers["completion_tokens"]
    asked = np.zeros((n, len(CHECK_ORDER)), dtype=np.bool_)
    good = np.zeros((n, len(CHECK_ORDER)), dtype=np.bool_)
    for name, flag in (("json_validity", "json_valid"), ("schema_validity", "schema_valid")):
        offset = CHECK_ORDER.index(name)
        asked[:, offset] = side.flags[flag] != NOT_LOGGED
        good[:, offset] = side.flags[flag] == 1
    tests = TestTable(case=case, outcome=outcome, fell_back=np.zeros(n, dtype=np.bool_))
    calls = CallTable(
        test=np.arange(n, dtype=np.int64),
        ok=ok,
        error_kind=side.error,
        latency=numbers["latency_ms"],
        ttft=numbers["ttft_ms"],
        streamed=~np.isnan(numbers["ttft_ms"]),
        cost=numbers["cost_usd"],
        has_usage=~(np.isnan(prompt) & np.isnan(completion)),
        # Prompt plus completion tokens; a side that logged only one of them has no total.
        tokens=prompt + completion,
        asked=asked,
        good=good,
        logical_calls=n,
    )
    return tests, calls


# The latency figures whose timing a verdict states, and whether only streamed calls have them.
_TIMED = (("latency_p50_ms", False), ("latency_p95_ms", False), ("ttft_p95_ms", True))


def _timing_source(calls: CallTable, streamed_only: bool) -> str | None:
    """Every shadow figure was measured live (``decide._timing_sources``'s field); None when
    the arm has no such figure."""
    timed = calls.ok & ~np.isnan(calls.latency)
    if streamed_only:
        timed &= calls.streamed
    return "live" if bool(timed.any()) else None


def _whole_log(sides: Mapping[str, SideColumns]) -> dict[str, Any]:
    """Each arm's error rate and mean latency over every pair."""
    figures: dict[str, Any] = {}
    for arm, _ in ARMS:
        side = sides[arm]
        n = len(side.error)
        errors = int(np.count_nonzero(side.error != None))  # noqa: E711 (element-wise)
        latency = side.numbers["latency_ms"]
        timed = latency[~np.isnan(latency)]
        figures[arm] = {
            "error_rate": round(errors / n, 6) if n else None,
            "mean_latency_ms": round(fsum(timed) / len(timed), 1) if len(timed) else None,
        }
    return figures


# ---------------------------------------------------------------------------------------------
# the per-case view


def _cases_changed(
    sides: Mapping[str, SideColumns],
    ids: Sequence[str],
    code: Ints,
    repeat: Ints,
    route: str,
    languages: Sequence[str | None],
) -> dict[str, Any]:
    """The verdict's ``cases_changed`` (``reports.cases``), from the columns: which pairs changed
    is worked out for every pair in numpy; the listed ones are read through the records code,
    from record dicts made for them only."""
    from pytest_modelgate.verdict.reports.cases import (
        MAX_CASES_IN_VERDICT,
        case_changes,
        changes_section,
        natural_key,
    )

    flags = {arm: _change_flags(sides[arm]) for arm, _ in ARMS}
    s, c = flags["stable"], flags["candidate"]
    pass_fail = ~s["failed"] & c["failed"]
    score = 10 * pass_fail.astype(np.int64) - 10 * (s["failed"] & ~c["failed"])
    changed = s["failed"] != c["failed"]
    for what in ("json_invalid", "call_error"):
        differ = s[what] != c[what]
        changed |= differ
        score += np.where(differ, np.where(c[what], 1, -1), 0)
    for what in ("tools", "reply"):
        left, right = sides["stable"], sides["candidate"]
        a = left.tools if what == "tools" else left.reply_language
        b = right.tools if what == "tools" else right.reply_language
        present: Flags = (a != None) & (b != None)  # noqa: E711 (element-wise)
        changed |= present & (a != b)
    worse = score >= 0
    total = int(np.count_nonzero(changed))
    # The listed ones: worse first, pass -> fail first among them, then by case id (naturally).
    shown: list[int] = []
    for group in (
        changed & worse & pass_fail,
        changed & worse & ~pass_fail,
        changed & ~worse & pass_fail,
        changed & ~worse & ~pass_fail,
    ):
        rows: list[int] = np.flatnonzero(group).tolist()
        rows.sort(key=lambda row: (natural_key(ids[int(code[row])]), int(repeat[row])))
        shown += rows[: MAX_CASES_IN_VERDICT - len(shown)]
        if len(shown) >= MAX_CASES_IN_VERDICT:
            break
    records = [
        record
        for row in shown
        for record in _row_records(
            sides, row, ids[int(code[row])], int(repeat[row]), route, languages[int(code[row])]
        )
    ]
    listed = case_changes(records)
    return changes_section(listed, total=total)


def _change_flags(side: SideColumns) -> dict[str, Flags]:
    error: Flags = side.error != None  # noqa: E711 (element-wise)
    failed = error | (side.flags["contract_ok"] == 0)
    # Only where JSON was asked for (``reports.cases``): a plain-text reply is not invalid.
    json_invalid = (side.flags["json_valid"] == 0) | (side.flags["schema_valid"] == 0)
    return {"failed": failed, "json_invalid": json_invalid, "call_error": error}


def _row_records(
    sides: Mapping[str, SideColumns],
    row: int,
    case_id: str,
    repeat: int,
    route: str,
    language: str | None,
) -> Iterable[dict[str, Any]]:
    """One pair's two sides as the record dicts ``reports.cases`` reads."""
    for arm, _ in ARMS:
        side = sides[arm]
        flags = {name: int(values[row]) for name, values in side.flags.items()}
        error = side.error[row]
        numbers = {name: float(values[row]) for name, values in side.numbers.items()}
        checks = tuple(
            check
            for check, flag in (("json", "json_valid"), ("schema", "schema_valid"))
            if flags[flag] != NOT_LOGGED
        )
        tools = side.tools[row]
        call = {
            "call_index": 0,
            "attempt": 0,
            "error_kind": error,
            "latency_ms": _or_none(numbers["latency_ms"]),
            "cost_usd": _or_none(numbers["cost_usd"]),
            "checks": list(checks),
            "json_valid": None if flags["json_valid"] == NOT_LOGGED else bool(flags["json_valid"]),
            "schema_valid": None
            if flags["schema_valid"] == NOT_LOGGED
            else bool(flags["schema_valid"]),
            "tool_calls": tools.split(TOOL_SEPARATOR) if tools else [],
            "reply_language": side.reply_language[row],
        }
        passed = error is None and flags["contract_ok"] != 0
        yield {
            "case_id": case_id,
            "repeat": repeat,
            "arm": arm,
            "workflow": route,
            "language": language,
            "outcome": "passed" if passed else "failed",
            "calls": [call],
        }


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value
