"""The per-case view: which cases changed between the arms, read from the records file.

The records file (``<verdict>.records.jsonl``, one JSON line per test item and arm with its
HTTP attempts, ``calls.records.TestRecord``) is read leniently as plain dicts: a report
must still render when the file is absent, truncated, or written by a version with other fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ArmCase",
    "CaseChange",
    "RunRecords",
    "case_changes",
    "cases_changed_section",
    "changes_section",
    "latencies",
    "load_records",
    "natural_key",
    "records_path_for",
]

# How many changed cases a verdict lists (the count says how many there were in all).
MAX_CASES_IN_VERDICT = 200
_MAX_REASON_CHARS = 300
_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders numbers by value: ``case-2`` before ``case-10``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(text) if part
    )


_FAILED = frozenset({"failed", "error"})


@dataclass(frozen=True)
class RunRecords:
    """The records of a run as read from disk; ``problem`` says why there are none (or fewer)."""

    records: tuple[Mapping[str, Any], ...] = ()
    path: Path | None = None
    problem: str | None = None
    # Lines that were not a JSON object with the fields a record needs.
    skipped_lines: int = 0


def records_path_for(verdict: Mapping[str, Any], verdict_path: Path) -> Path | None:
    """Where the verdict's records file is: its ``records_file`` next to the verdict."""
    name = verdict.get("records_file")
    if not isinstance(name, str) or not name:
        return None
    # Only a file name is trusted: a verdict cannot point the report anywhere else.
    return Path(verdict_path).with_name(Path(name).name)


def load_records(verdict: Mapping[str, Any], verdict_path: Path) -> RunRecords:
    """Read the records next to ``verdict_path``; never raises, says what is missing instead."""
    path = records_path_for(verdict, verdict_path)
    if path is None:
        return RunRecords(problem="the verdict names no records file")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return RunRecords(path=path, problem=f"no records file at {path}")
    except OSError as exc:
        return RunRecords(path=path, problem=f"cannot read {path}: {exc.strerror or exc}")
    records: list[Mapping[str, Any]] = []
    skipped = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if not isinstance(data, dict) or not isinstance(data.get("case_id"), str):
            skipped += 1
            continue
        if data.get("arm") not in ("stable", "candidate"):
            skipped += 1
            continue
        records.append(data)
    problem = f"{skipped} unreadable line(s) in {path} left out" if skipped else None
    return RunRecords(tuple(records), path, problem, skipped)


def _calls(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    calls = record.get("calls")
    return [c for c in calls if isinstance(c, dict | Fields)] if isinstance(calls, list) else []


class Fields(Mapping[str, Any]):
    """A record model (``TestRecord``, ``CallRecord``) read as its JSON dump reads, undumped.

    What this module reads of a record is the same through either: strings, numbers, booleans
    and tuples of strings, with ``calls`` a list of the calls' fields. The verdict builder reads
    a run's records this way; dumping every one (the reports' input) cost more than the rest of
    the per-case view.
    """

    __slots__ = ("_record",)

    def __init__(self, record: Any) -> None:
        self._record = record

    def __getitem__(self, key: str) -> Any:
        try:
            value = getattr(self._record, key)
        except AttributeError:
            raise KeyError(key) from None
        if key == "calls":
            return [Fields(call) for call in value]
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """``self[key]``, or ``default`` for a field the record does not have."""
        if key == "calls":
            return self[key]
        return getattr(self._record, key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(type(self._record).model_fields)

    def __len__(self) -> int:
        return len(type(self._record).model_fields)


def _final_attempts(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The last attempt of each logical call: what the test got back after retries."""
    last: dict[Any, Mapping[str, Any]] = {}
    for call in _calls(record):
        key = call.get("call_index")
        previous = last.get(key)
        if previous is None or _number(call.get("attempt")) >= _number(previous.get("attempt")):
            last[key] = call
    return list(last.values())


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _sum(values: Iterable[Any]) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return sum(numbers) if numbers else None


@dataclass(frozen=True)
class ArmCase:
    """One arm's side of a case: outcome, reason, and what its calls took."""

    outcome: str
    message: str | None
    latency_ms: float | None
    cost_usd: float | None
    json_invalid: bool
    wrong_tool: bool
    wrong_language: bool
    call_error: str | None
    reply_languages: tuple[str, ...]
    tool_calls: tuple[str, ...]
    violations: tuple[str, ...]

    @property
    def failed(self) -> bool:
        """Whether the test failed (or errored) on this arm."""
        return self.outcome in _FAILED


def _arm_case(record: Mapping[str, Any]) -> ArmCase:
    finals = _final_attempts(record)
    errors = [str(c.get("error_kind")) for c in finals if c.get("error_kind")]
    violations: list[str] = []
    for call in finals:
        for violation in call.get("violations") or ():
            if isinstance(violation, str) and violation not in violations:
                violations.append(violation)
    message = record.get("message")
    return ArmCase(
        outcome=str(record.get("outcome", "?")),
        message=message if isinstance(message, str) and message else None,
        latency_ms=_sum(c.get("latency_ms") for c in _calls(record)),
        cost_usd=_sum(c.get("cost_usd") for c in _calls(record)),
        # Only where JSON was asked for: a plain-text reply is not "invalid JSON".
        json_invalid=any(
            ("json" in (c.get("checks") or ()) and c.get("json_valid") is False)
            or c.get("schema_valid") is False
            for c in finals
        ),
        wrong_tool=any(c.get("tool_calls_valid") is False for c in finals),
        wrong_language=any(c.get("language_match") is False for c in finals),
        call_error=errors[0] if errors else None,
        reply_languages=tuple(
            str(c["reply_language"]) for c in finals if isinstance(c.get("reply_language"), str)
        ),
        tool_calls=tuple(
            str(name) for c in finals for name in (c.get("tool_calls") or ()) if name is not None
        ),
        violations=tuple(violations),
    )


@dataclass(frozen=True)
class CaseChange:
    """A case whose result differs between the arms, and how."""

    case_id: str
    repeat: int
    workflow: str | None
    language: str | None
    changes: tuple[str, ...]
    stable: ArmCase
    candidate: ArmCase
    # True when the candidate is worse on this case (it failed, or broke what stable kept).
    worse: bool = field(default=True)

    @property
    def label(self) -> str:
        """The case id, with the repeat when there were repeats."""
        return self.case_id if self.repeat == 0 else f"{self.case_id} (repeat {self.repeat})"

    @property
    def reason(self) -> str:
        """Why it changed: the failing arm's message, else its contract violations."""
        side = self.candidate if self.worse else self.stable
        parts: list[str] = []
        if side.message:
            parts.append(side.message)
        parts += [v for v in side.violations if v not in parts]
        if side.call_error and not parts:
            parts.append(f"call ended with {side.call_error}")
        return "; ".join(parts)


def _one_sided(stable: bool, candidate: bool, what: str) -> str | None:
    if candidate and not stable:
        return f"{what} (candidate)"
    if stable and not candidate:
        return f"{what} (stable)"
    return None


def _compare(stable: ArmCase, candidate: ArmCase) -> tuple[list[str], bool]:
    changes: list[str] = []
    worse_score = 0
    if not stable.failed and candidate.failed:
        changes.append("pass -> fail")
        worse_score += 10
    elif stable.failed and not candidate.failed:
        changes.append("fail -> pass")
        worse_score -= 10
    for stable_flag, candidate_flag, what in (
        (stable.json_invalid, candidate.json_invalid, "invalid JSON"),
        (stable.wrong_tool, candidate.wrong_tool, "wrong tool"),
        (stable.wrong_language, candidate.wrong_language, "wrong language"),
        (stable.call_error is not None, candidate.call_error is not None, "call error"),
    ):
        text = _one_sided(stable_flag, candidate_flag, what)
        if text is not None:
            changes.append(text)
            worse_score += 1 if candidate_flag else -1
    if (
        not stable.wrong_tool
        and not candidate.wrong_tool
        and stable.tool_calls
        and candidate.tool_calls
        and stable.tool_calls != candidate.tool_calls
    ):
        changes.append(f"tools {', '.join(stable.tool_calls)} -> {', '.join(candidate.tool_calls)}")
    if (
        not stable.wrong_language
        and not candidate.wrong_language
        and stable.reply_languages
        and candidate.reply_languages
        and stable.reply_languages != candidate.reply_languages
    ):
        changes.append(
            f"language {'/'.join(stable.reply_languages)} -> {'/'.join(candidate.reply_languages)}"
        )
    return changes, worse_score >= 0


def case_changes(records: Sequence[Mapping[str, Any]]) -> list[CaseChange]:
    """Every case (and repeat) whose result differs between the arms; worse ones first.

    Cases seen on one arm only are left out: there is nothing to compare them with.
    """
    arms: dict[tuple[str, int], dict[str, Mapping[str, Any]]] = {}
    for record in records:
        repeat = record.get("repeat", 0)
        key = (str(record["case_id"]), repeat if isinstance(repeat, int) else 0)
        arms.setdefault(key, {})[str(record["arm"])] = record
    changed: list[CaseChange] = []
    for (case_id, repeat), pair in arms.items():
        if "stable" not in pair or "candidate" not in pair:
            continue
        stable, candidate = _arm_case(pair["stable"]), _arm_case(pair["candidate"])
        changes, worse = _compare(stable, candidate)
        if not changes:
            continue
        workflow = pair["candidate"].get("workflow") or pair["stable"].get("workflow")
        language = pair["stable"].get("language") or pair["candidate"].get("language")
        changed.append(
            CaseChange(
                case_id=case_id,
                repeat=repeat,
                workflow=str(workflow) if workflow else None,
                language=str(language) if language else None,
                changes=tuple(changes),
                stable=stable,
                candidate=candidate,
                worse=worse,
            )
        )
    # Regressions first (pass -> fail before lesser changes), then by case id for a stable order.
    changed.sort(
        key=lambda c: (
            not c.worse,
            "pass -> fail" not in c.changes,
            natural_key(c.case_id),
            c.repeat,
        )
    )
    return changed


def _arm_summary(arm: ArmCase) -> dict[str, Any]:
    return {
        "outcome": arm.outcome,
        "latency_ms": None if arm.latency_ms is None else round(arm.latency_ms, 1),
        "cost_usd": None if arm.cost_usd is None else float(f"{arm.cost_usd:.8g}"),
    }


def cases_changed_section(
    records: Sequence[Mapping[str, Any]], *, limit: int = MAX_CASES_IN_VERDICT
) -> dict[str, Any]:
    """The verdict's ``cases_changed``: the first ``limit`` changed cases of ``case_changes``.

    The same view as the reports', built by the same code from the same records (the verdict
    builder passes its records read through :class:`Fields`), so "changed" has one definition.
    """
    changed = case_changes(records)
    return changes_section(changed[:limit], total=len(changed))


def changes_section(changed: Sequence[CaseChange], *, total: int) -> dict[str, Any]:
    """``cases_changed`` listing ``changed`` (in their order), of ``total`` changed cases."""
    return {
        "total": total,
        "cases": [
            {
                "case_id": change.case_id,
                "repeat": change.repeat,
                "workflow": change.workflow,
                "changes": list(change.changes),
                "worse": change.worse,
                "reason": change.reason[:_MAX_REASON_CHARS] or None,
                "stable": _arm_summary(change.stable),
                "candidate": _arm_summary(change.candidate),
            }
            for change in changed
        ],
    }


def latencies(records: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Latency (ms) of every successful attempt, per arm, sorted: the distributions to chart."""
    result: dict[str, list[float]] = {"stable": [], "candidate": []}
    for record in records:
        arm = str(record.get("arm"))
        if arm not in result:
            continue
        for call in _calls(record):
            value = call.get("latency_ms")
            if call.get("error_kind") is None and isinstance(value, int | float):
                result[arm].append(float(value))
    for values in result.values():
        values.sort()
    return result
