"""The end of a run: judge the records, pick the exit status, write the verdict atomically.

Fail closed: anything that makes the data untrustworthy (an interruption, an internal error, a
crashed worker, a broken record, a judge or hook that raises) gives verdict ``error`` and a
non-zero exit status, never ``pass``.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pytest_modelgate.calls.records import Arm, TestRecord
from pytest_modelgate.errors import ModelgateError
from pytest_modelgate.judge.model import Judge, Judgement, RunData
from pytest_modelgate.redaction import Redactor, redactor_for
from pytest_modelgate.session import EXIT_ERROR, EXIT_FAIL, EXIT_OK, GateSession

if TYPE_CHECKING:
    from pytest_modelgate.config.settings import GateLimits
    from pytest_modelgate.judge.columns import CaseAggregates

# pytest's own exit statuses (pytest.ExitCode), spelled out to keep this module pytest-free.
_PYTEST_OK = 0
_PYTEST_TESTS_FAILED = 1
_PYTEST_INTERRUPTED = 2
_PYTEST_INTERNAL_ERROR = 3
_PYTEST_USAGE_ERROR = 4
_PYTEST_NO_TESTS = 5


def finish(
    gate: GateSession,
    *,
    pytest_status: int,
    stopped_early: bool,
    judge: Callable[[], Judge | None],
    amend: Callable[[dict[str, Any]], object],
) -> int | None:
    """Decide, write the verdict and return the exit status to set (None: leave pytest's)."""
    path = gate.settings.verdict_path
    # Every text written below goes through the one scrubbing rule (pytest_modelgate.redaction).
    redactor = redactor_for(gate.secret_values())
    if not gate.used and gate.candidate is None and not gate.config_errors:
        # Nothing was gated: an ordinary pytest run. Drop the placeholder we put over an old
        # verdict at start, so no stale verdict is left behind as if it were this run's.
        if gate.provisional_written:
            with contextlib.suppress(OSError):
                path.unlink()
        return None

    stable, candidate = gate.test_records()
    problems = _problems(gate, pytest_status=pytest_status, stopped_early=stopped_early)
    verdict, exit_status = _decided(
        gate, (stable, candidate), problems, pytest_status=pytest_status, judge=judge, amend=amend
    )
    verdict = redactor.scrub_value(verdict)
    records = (*stable, *candidate)
    if gate.settings.records_part is not None:
        try:
            # The shard's raw data for `modelgate merge`, whatever this shard's own verdict.
            write_part(
                gate, records, pytest_status=pytest_status, problems=problems, redactor=redactor
            )
        except Exception as exc:
            exit_status = EXIT_ERROR
            part = gate.settings.records_part
            verdict = _error(
                gate, [f"the records part could not be written to {part}: {exc}"], exit_status
            )
            verdict = redactor.scrub_value(verdict)
    verdict, exit_status = _written(gate, verdict, exit_status, records, redactor)
    gate.verdict = verdict
    return exit_status


def _decided(
    gate: GateSession,
    records: tuple[list[TestRecord], list[TestRecord]],
    problems: list[str],
    *,
    pytest_status: int,
    judge: Callable[[], Judge | None],
    amend: Callable[[dict[str, Any]], object],
) -> tuple[dict[str, Any], int]:
    """The run's verdict and exit status: an error for ``problems``, else the judge's; a
    judge or hook that fails gives an error verdict (the gate fails closed)."""
    if problems:
        if gate.config_errors:
            exit_status = _PYTEST_USAGE_ERROR
        elif pytest_status in (_PYTEST_OK, _PYTEST_TESTS_FAILED, _PYTEST_NO_TESTS):
            exit_status = EXIT_ERROR
        else:
            exit_status = pytest_status  # interrupted (2), internal error (3)
        return _error(gate, problems, exit_status), exit_status
    try:
        return _judge(gate, records, pytest_status, judge, amend)
    except VerdictHookError as exc:
        return _error(gate, [str(exc)], EXIT_ERROR), EXIT_ERROR
    except Exception as exc:  # a broken judge or hook: fail closed
        reason = f"the gate crashed while deciding: {exc!r}"
        return _error(gate, [reason], EXIT_ERROR), EXIT_ERROR


def _written(
    gate: GateSession,
    verdict: dict[str, Any],
    exit_status: int,
    records: Sequence[TestRecord],
    redactor: Redactor,
) -> tuple[dict[str, Any], int]:
    """Write the records file and the verdict; on failure, the error verdict that says so
    (written in its place if it can be) and the error exit status."""
    from pytest_modelgate.verdict.model import write_text_atomic, write_verdict_atomic

    path = gate.settings.verdict_path
    try:
        if records:
            # Every test item with its attempts, for diagnosis and for tools that re-judge a run;
            # written before the verdict that names it.
            records_path = gate.settings.records_path
            write_text_atomic(records_path, "".join(record_line(r, redactor) for r in records))
            verdict["records_file"] = records_path.name
        write_verdict_atomic(path, verdict)
        gate.verdict_written = True
        return verdict, exit_status
    except Exception as exc:
        verdict = _error(gate, [f"the verdict could not be written to {path}: {exc}"], EXIT_ERROR)
        verdict = redactor.scrub_value(verdict)
    # If even that fails, the terminal summary still says error (and not "verdict written
    # to"), the exit is non-zero and no earlier verdict is left to be read as this run's.
    try:
        write_verdict_atomic(path, verdict)
        gate.verdict_written = True
    except Exception:
        from pytest_modelgate.verdict.model import discard_verdict

        _done, happened = discard_verdict(path)
        verdict["reasons"].append(f"the error verdict could not be written either; {happened}")
    return verdict, EXIT_ERROR


def write_part(
    gate: GateSession,
    records: Iterable[TestRecord],
    *,
    pytest_status: int | None,
    problems: list[str],
    redactor: Redactor | None = None,
) -> None:
    """Write this run's records part (``--modelgate-records``) atomically.

    ``pytest_status`` None: the provisional part written when the run starts, marked incomplete,
    so that a shard killed before its end can never be merged as if it had run.
    """
    from pytest_modelgate import __version__
    from pytest_modelgate.verdict.merge import part_text
    from pytest_modelgate.verdict.model import write_text_atomic

    path = gate.settings.records_part
    if path is None:
        return
    if redactor is None:
        redactor = redactor_for(gate.secret_values())
    records = list(records)
    final = pytest_status is not None
    if not final:
        problems = [
            "the shard has not finished: it is still running, or it was killed before the end"
        ]
    header = {
        "plugin_version": __version__,
        "run_id": gate.run_id,
        "kind": gate.kind,
        "stable": _identity_json(gate, "stable"),
        "candidate": _identity_json(gate, "candidate"),
        "mode": gate.settings.mode,
        "repeat": gate.settings.repeat,
        "strict": gate.settings.strict,
        "config_digest": gate.config_digest(),
        # What the digest covers, so that merge rebuilds the judge without modelgate.yaml.
        "settings": gate.judged_settings(),
        "git": None if gate.git is None else dict(gate.git),
        "tests": {
            "collected": len(gate.gated_test_ids) if final and gate.tests_known else None,
            "ids": sorted(gate.gated_test_ids) if final and gate.tests_known else None,
        },
        "cassettes": gate.cassette_lines() if final else None,
        "args": list(gate.invocation_args),
        "judge": "hook" if gate.custom_judge else "built-in",
        "verdict_hooks": list(gate.verdict_hooks),
        "custom_metrics": list(gate.custom_metrics),
        "pytest_exit_status": pytest_status,
        "complete": final and not problems,
        "problems": list(problems),
        "started_at": gate.started_at.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat() if final else None,
        "records": len(records),
    }
    write_text_atomic(
        path,
        part_text(redactor.scrub_value(header), (record_line(r, redactor) for r in records)),
    )


def _identity_json(gate: GateSession, arm: Arm) -> dict[str, Any] | None:
    identity = gate.identity(arm)
    return None if identity is None else identity.model_dump(mode="json")


def record_line(record: TestRecord, redactor: Redactor) -> str:
    """One line of the records file, with every secret scrubbed from every text field.

    Scrubbed as data, not as JSON text, so the line stays valid JSON whatever the key's escaping.
    """
    line = record.model_dump_json()
    if redactor and redactor.scrub_text(line) != line:
        data = redactor.scrub_value(record.model_dump(mode="json"))
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return line + "\n"


def _problems(gate: GateSession, *, pytest_status: int, stopped_early: bool) -> list[str]:
    problems = [f"configuration error: {message}" for message in gate.config_errors]
    if gate.collection_errors:
        shown = ", ".join(gate.collection_errors[:3])
        more = len(gate.collection_errors) - 3
        problems.append(
            f"{len(gate.collection_errors)} collection error(s) ({shown}"
            + (f" and {more} more" if more > 0 else "")
            + "): those tests never ran, so the arms cannot be compared"
        )
    elif pytest_status == _PYTEST_INTERRUPTED:
        problems.append("the run was interrupted before every test finished")
    elif pytest_status == _PYTEST_INTERNAL_ERROR:
        problems.append("pytest or a plugin raised an internal error during the run")
    elif pytest_status == _PYTEST_USAGE_ERROR and not gate.config_errors:
        problems.append("the run stopped on a usage error")
    problems.extend(gate.problems)
    if gate.candidate is not None:
        if stopped_early:
            problems.append(
                "the run stopped early (-x or --maxfail): only part of the cases ran, so the "
                "arms cannot be compared"
            )
        if not gate.used and not gate.collection_errors:
            problems.append(
                "no selected test uses the `llm` fixture, so nothing was compared; select the "
                "workflow tests or drop --candidate-model"
            )
    return problems


def _judge(
    gate: GateSession,
    records: tuple[list[TestRecord], list[TestRecord]],
    pytest_status: int,
    judge: Callable[[], Judge | None],
    amend: Callable[[dict[str, Any]], object],
) -> tuple[dict[str, Any], int]:
    def chosen() -> Judge | None:
        found = judge()
        gate.custom_judge = found is not None
        return found

    return judged_verdict(
        records,
        limits=gate.settings.config.gate,
        strict=gate.settings.strict,
        has_candidate=gate.candidate is not None,
        pytest_status=pytest_status,
        started_at=gate.started_at,
        common=gate.verdict_common(),
        judge=chosen,
        amend=amend,
        allowances=gate.judged_settings()["allowances"],
        metric_labels=gate.custom_metric_labels,
    )


def canonical_order(records: Iterable[TestRecord]) -> list[TestRecord]:
    """``records`` sorted by case, repeat and test id: the order every judge receives them in.

    The order records arrive in depends on the scheduling (xdist workers, shards); the judge's
    input must not, so that a sharded run merged later is judged exactly like one run.
    """
    return sorted(records, key=lambda r: (r.case_id, r.repeat, r.test_id))


def judged_verdict(
    records: tuple[list[TestRecord], list[TestRecord]],
    *,
    limits: GateLimits,
    strict: bool,
    has_candidate: bool,
    pytest_status: int,
    started_at: datetime,
    common: dict[str, Any],
    judge: Callable[[], Judge | None] = lambda: None,
    amend: Callable[[dict[str, Any]], object] = lambda verdict: None,
    allowances: Sequence[Mapping[str, Any]] = (),
    metric_labels: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], int]:
    """Judge the records of both arms and build the verdict; also ``modelgate merge``'s path.

    ``common`` holds the identity fields (``GateSession.verdict_common``); ``judge`` returns a
    hook's judge or None for the built-in one; ``amend`` runs the verdict hooks; ``allowances``
    are the margins widened on purpose (already applied to ``limits``), in their JSON form.
    """

    stable, candidate = canonical_order(records[0]), canonical_order(records[1])
    # `judge` calls the pytest_modelgate_judge hook: inside the caller's try, so that a hook
    # that raises gives an `error` verdict like any other failure while deciding.
    chosen: Judge = judge() or default_judge(limits)
    judgement = chosen.judge(RunData(stable=stable, candidate=candidate if has_candidate else None))

    def cases_changed() -> dict[str, Any]:
        from pytest_modelgate.verdict.reports.cases import Fields, cases_changed_section

        # The per-case view of the reports, from the same records: one definition of "changed".
        return cases_changed_section([Fields(r) for r in (*stable, *candidate)])

    return _verdict_of(
        judgement,
        strict=strict,
        has_candidate=has_candidate,
        pytest_status=pytest_status,
        started_at=started_at,
        common=common,
        timing=_timing_sources(stable, candidate if has_candidate else None),
        cases_changed=cases_changed,
        amend=amend,
        allowances=allowances,
        metric_labels=metric_labels,
    )


def aggregated_verdict(
    run: CaseAggregates,
    *,
    limits: GateLimits,
    started_at: datetime,
    common: dict[str, Any],
    timing: Mapping[str, Mapping[str, str | None]],
    cases_changed: dict[str, Any],
) -> tuple[dict[str, Any], int]:
    """A run given as per-case aggregates (``modelgate analyze``) judged by the built-in judge,
    and its verdict, built as ``judged_verdict`` builds one; ``timing`` and ``cases_changed``
    are what ``judged_verdict`` reads from records."""
    from pytest_modelgate.judge.paired import PairedJudge

    judge = default_judge(limits)
    assert isinstance(judge, PairedJudge)
    return _verdict_of(
        judge.judge_aggregates(run),
        strict=False,
        has_candidate=True,
        pytest_status=0,
        started_at=started_at,
        common=common,
        timing=timing,
        cases_changed=lambda: cases_changed,
    )


def _verdict_of(
    judgement: Judgement,
    *,
    strict: bool,
    has_candidate: bool,
    pytest_status: int,
    started_at: datetime,
    common: dict[str, Any],
    timing: Mapping[str, Mapping[str, str | None]],
    cases_changed: Callable[[], dict[str, Any]],
    amend: Callable[[dict[str, Any]], object] = lambda verdict: None,
    allowances: Sequence[Mapping[str, Any]] = (),
    metric_labels: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], int]:
    from pytest_modelgate.verdict.model import build_verdict

    verdict_name = str(judgement.verdict)
    extra_reasons: list[str] = []
    if has_candidate and strict and verdict_name in ("pass", "inconclusive"):
        failed = _failed_case_count(judgement)
        if failed:
            verdict_name = "fail"
            extra_reasons.append(f"--modelgate-strict: {failed} case(s) failed on at least one arm")
        elif verdict_name == "inconclusive":
            verdict_name = "fail"
            extra_reasons.append("--modelgate-strict: an inconclusive verdict fails the run")

    exit_status = _exit_status(verdict_name, pytest_status, has_candidate)
    verdict = build_verdict(
        judgement,
        started_at=started_at,
        finished_at=datetime.now(timezone.utc),
        exit_status=exit_status,
        metric_labels=metric_labels,
        **common,
    )
    for name, sources in timing.items():
        entry = verdict["metrics"].get(name)
        if entry is not None:
            entry["timing"] = dict(sources)
    if has_candidate:
        verdict["cases_changed"] = cases_changed()
    if allowances:
        # Margins widened on purpose for this run: the reviewer must see them in the verdict.
        verdict["allowances"] = [dict(a) for a in allowances]
    if verdict_name != verdict["verdict"]:
        verdict["verdict"] = verdict_name
        verdict["reasons"] = [*extra_reasons, *verdict["reasons"]]
        _restrict_rollout(verdict, extra_reasons[0] if extra_reasons else "the verdict changed")
    exit_status = _amended(verdict, amend, exit_status, pytest_status, has_candidate)
    return verdict, exit_status


class VerdictHookError(ModelgateError):
    """A ``pytest_modelgate_verdict`` hook made the verdict more lenient or changed its identity."""


# From most lenient to strictest. A hook may move a verdict only to the right.
_SEVERITY = {"pass": 0, "inconclusive": 1, "fail": 2, "error": 3}
# What was judged and how completely: the deploy step relies on these, so no hook may change them.
_BOUND_FIELDS = ("kind", "complete", "run_id", "stable", "candidate", "mode", "provenance")


def _amended(
    verdict: dict[str, Any],
    amend: Callable[[dict[str, Any]], object],
    exit_status: int,
    pytest_status: int,
    has_candidate: bool,
) -> int:
    """Let the verdict hooks amend ``verdict``; return the exit status that fits the result.

    Hooks publish or tighten a verdict; they can never turn one into a ``pass`` the judge did not
    give (a conftest.py that "fixes" a red gate would be a fail-open path).
    """
    before = verdict["verdict"]
    bound = {key: copy.deepcopy(verdict.get(key)) for key in _BOUND_FIELDS}
    amend(verdict)
    after = verdict.get("verdict")
    if after not in _SEVERITY:
        return exit_status  # schema validation names the field when the verdict is written
    if _SEVERITY[after] < _SEVERITY[before]:
        raise VerdictHookError(
            f"a pytest_modelgate_verdict hook turned the verdict {before!r} into {after!r}: a "
            "hook may make a verdict stricter, never more lenient"
        )
    changed = [key for key in _BOUND_FIELDS if verdict.get(key) != bound[key]]
    if changed:
        raise VerdictHookError(
            f"a pytest_modelgate_verdict hook changed {', '.join(changed)}: these say what was "
            "judged, and no hook may change them"
        )
    if after == before:
        return exit_status
    _restrict_rollout(verdict, f"a pytest_modelgate_verdict hook made the verdict {after}")
    exit_status = _exit_status(str(after), pytest_status, has_candidate)
    verdict["exit_status"] = exit_status
    return exit_status


def _restrict_rollout(verdict: dict[str, Any], why: str) -> None:
    """Fit the rollout to a verdict made stricter after judging (strict mode, a hook)."""
    rollout = verdict.get("rollout")
    name = verdict["verdict"]
    if name == "error":
        verdict["rollout"] = None  # an error decides nothing, so it plans nothing
    elif not rollout:
        return
    elif name == "fail":
        # A run that fails allows no rollout, whoever turned it into a failure.
        verdict["rollout"] = {
            **rollout,
            "allowed": False,
            "reason": f"{why}: no rollout",
            "plan": [],
        }
    elif name == "inconclusive":
        steps = rollout.get("plan") or []
        shadow = [step for step in steps if step.get("phase") == "shadow"]
        if not shadow and steps:
            shadow = [
                {
                    "phase": "shadow",
                    "traffic_percent": 0,
                    "min_requests": 2 * int(steps[0].get("min_requests", 0)),
                    "note": "mirror live requests to the candidate, serve the stable model's "
                    "answers",
                }
            ]
        verdict["rollout"] = {
            **rollout,
            "allowed": bool(shadow),
            "reason": f"{why}: shadow traffic only",
            "plan": shadow,
        }


def default_judge(limits: GateLimits) -> Judge:
    """The built-in judge: the paired statistical judge with the configured margins."""
    from pytest_modelgate.judge.paired import Margins, PairedJudge

    return PairedJudge(
        Margins.from_limits(limits),
        confidence=limits.confidence,
        resamples=limits.resamples,
        min_cases=limits.min_cases,
        min_stable_pass_rate=limits.min_stable_pass_rate,
    )


def _timing_sources(
    stable: list[TestRecord], candidate: list[TestRecord] | None
) -> dict[str, dict[str, str | None]]:
    """Per latency figure and arm, whether it was measured live or replayed from recordings."""
    from pytest_modelgate.judge.metrics import METRICS

    # Time to first token exists only for streamed attempts (see metrics.py).
    return {
        spec.name: {
            "stable": _timing_source(stable, spec.name.startswith("ttft")),
            "candidate": None
            if candidate is None
            else _timing_source(candidate, spec.name.startswith("ttft")),
        }
        for spec in METRICS
        if spec.unit == "ms"
    }


def _timing_source(records: list[TestRecord], streamed_only: bool) -> str | None:
    sources = {
        call.timing
        for record in records
        for call in record.calls
        if call.ok and call.latency_ms is not None and (call.streamed or not streamed_only)
    }
    if not sources:
        return None
    return sources.pop() if len(sources) == 1 else "mixed"


def _failed_case_count(judgement: Judgement) -> int:
    return (
        len(judgement.cases_failed_both)
        + len(judgement.cases_failed_candidate_only)
        + len(judgement.cases_failed_stable_only)
    )


def _exit_status(verdict: str, pytest_status: int, has_candidate: bool) -> int:
    """The documented exit status (README, "Exit status")."""
    if verdict == "error":
        return EXIT_ERROR
    if not has_candidate:
        # A smoke run keeps ordinary pytest semantics.
        return pytest_status
    # With a candidate the gate decides: a case that fails on both arms is not a regression.
    return EXIT_FAIL if verdict == "fail" else EXIT_OK


def _error(gate: GateSession, reasons: list[str], exit_status: int) -> dict[str, Any]:
    from pytest_modelgate.verdict.model import error_verdict

    reason = reasons[0]
    verdict = error_verdict(
        reason,
        started_at=gate.started_at,
        finished_at=datetime.now(timezone.utc),
        exit_status=exit_status,
        complete=True,
        **gate.verdict_common(),
    )
    verdict["reasons"] = list(reasons)
    return verdict
