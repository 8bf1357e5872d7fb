"""Shards: each pytest run writes a records part, ``modelgate merge`` judges their union once.

The coverage.py model. A shard (``pytest --modelgate-records PATH``, one slice of the suite)
writes its raw data: a header line that says what was run and how completely, then one
``TestRecord`` per line. ``merge_parts`` reads every part, refuses parts that do not belong to
one run (another stable/candidate pair, configuration, commit or plugin version, a case present
twice), and judges the union of the records with the judge the parts' configuration describes,
exactly as one unsharded run would: never by combining the shards' p-values or verdicts. A part
whose run was incomplete makes the merged verdict ``error``, naming the part.

Pure: no pytest. The file format is documented in ``docs/verdict.md``, "Records parts".
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_modelgate.calls.records import ModelIdentity, TestRecord
from pytest_modelgate.errors import ModelgateError

__all__ = [
    "PART_FORMAT",
    "PART_VERSION",
    "MergeRefused",
    "MergeResult",
    "Part",
    "expand_parts",
    "merge_parts",
    "part_text",
    "read_part",
    "refusal_verdict",
    "secret_values",
    "write_result",
]

PART_FORMAT = "modelgate-records"
PART_VERSION = 1

# Header fields that must be equal in every part: they say which comparison was run, with which
# settings, on which code. A difference means the parts are not slices of one run.
_SAME = (
    ("plugin_version", "plugin version"),
    ("kind", "kind"),
    ("stable", "stable model"),
    ("candidate", "candidate model"),
    ("mode", "mode"),
    ("repeat", "repeat"),
    ("strict", "strict"),
    ("config_digest", "configuration (config_digest)"),
    ("git", "git commit / dirty state"),
)


class MergeRefused(ModelgateError):
    """The parts cannot be merged into one verdict (unreadable, or not slices of one run)."""


@dataclass(frozen=True)
class Part:
    """One records part as read from disk: its header and its test records."""

    path: Path
    header: Mapping[str, Any]
    records: tuple[TestRecord, ...]


@dataclass
class MergeResult:
    """The merged verdict (not yet validated or written), its records and the exit status."""

    verdict: dict[str, Any]
    records: list[TestRecord] = field(default_factory=list)
    exit_status: int = 3


def part_text(header: Mapping[str, Any], record_lines: Iterable[str]) -> str:
    """The text of a part: the header as one JSON line, then the (already scrubbed) records."""
    head = {"format": PART_FORMAT, "version": PART_VERSION, **dict(header)}
    return (
        json.dumps(head, ensure_ascii=False, separators=(",", ":")) + "\n" + "".join(record_lines)
    )


def expand_parts(arguments: Sequence[Path]) -> list[Path]:
    """The part files named by ``arguments``: a directory stands for its ``*.jsonl`` files."""
    paths: list[Path] = []
    for argument in arguments:
        if argument.is_dir():
            paths.extend(sorted(p for p in argument.glob("*.jsonl") if p.is_file()))
        else:
            paths.append(argument)
    return paths


def read_part(path: Path) -> Part:
    """Read and check one part; ``MergeRefused`` names the file and line of any problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MergeRefused(f"{path}: no such records part") from None
    except UnicodeDecodeError as exc:
        raise MergeRefused(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise MergeRefused(f"{path}: cannot read it: {exc.strerror or exc}") from None
    lines = text.splitlines()
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != PART_FORMAT:
        raise MergeRefused(
            f"{path}: not a records part (its first line is not a {PART_FORMAT} header); "
            "write one with pytest --modelgate-records PATH"
        )
    if header.get("version") != PART_VERSION:
        raise MergeRefused(
            f"{path}: records part version {header.get('version')!r}, this modelgate reads "
            f"version {PART_VERSION} only"
        )
    for key in ("settings", "config_digest", "complete", "problems", "records", "run_id"):
        if key not in header:
            raise MergeRefused(f"{path}: line 1: the header has no {key!r}")
    records: list[TestRecord] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            records.append(TestRecord.model_validate_json(line))
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise MergeRefused(f"{path}: line {number}: not a test record: {first}") from None
    if len(records) != header["records"]:
        raise MergeRefused(
            f"{path}: the header announces {header['records']} record(s), the file holds "
            f"{len(records)}: the part is truncated or was edited"
        )
    _check_digest(path, header)
    return Part(path=Path(path), header=header, records=tuple(records))


def _check_digest(path: Path, header: Mapping[str, Any]) -> None:
    from pytest_modelgate.verdict.provenance import config_digest

    settings = header["settings"]
    if not isinstance(settings, dict) or config_digest(settings) != header["config_digest"]:
        raise MergeRefused(
            f"{path}: the settings in the header do not match its config_digest: the part was "
            "edited"
        )


def _names(parts: Sequence[Part]) -> str:
    return ", ".join(str(p.path) for p in parts)


def _check_same(parts: Sequence[Part]) -> None:
    first = parts[0]
    for key, label in _SAME:
        for other in parts[1:]:
            if other.header.get(key) != first.header.get(key):
                raise MergeRefused(
                    f"{first.path} and {other.path} come from different runs: {label} "
                    f"{_short(first.header.get(key))} vs {_short(other.header.get(key))}"
                )
    # Keyed by position, not path: the same file given twice (or through a directory too)
    # would otherwise count every record twice.
    seen_runs: dict[str, tuple[int, Path]] = {}
    for index, part in enumerate(parts):
        number, previous = seen_runs.setdefault(str(part.header["run_id"]), (index, part.path))
        if number != index:
            which = (
                f"{part.path} is given twice"
                if previous == part.path
                else f"{previous} and {part.path} are the same part"
            )
            raise MergeRefused(f"{which} (run {part.header['run_id']})")
    for part in parts:
        if part.header.get("judge") == "hook" or part.header.get("verdict_hooks"):
            hooks = ", ".join(part.header.get("verdict_hooks") or ()) or "pytest_modelgate_judge"
            raise MergeRefused(
                f"{part.path}: the run used gate hooks ({hooks}); modelgate merge judges with the "
                "built-in judge and no hook, so its verdict could differ from an unsharded run's"
            )
        if part.header.get("custom_metrics"):
            names = ", ".join(map(str, part.header["custom_metrics"]))
            # Their definitions (margins, kinds) live in the plugins, not in the part: judging
            # without them would drop those comparisons, so a merged verdict could pass unjudged.
            raise MergeRefused(
                f"{part.path}: the run compared plugin metrics ({names}) that modelgate merge "
                "cannot judge without their pytest_modelgate_metrics hook; gate it unsharded"
            )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _check_disjoint(parts: Sequence[Part]) -> None:
    where: dict[tuple[str, str, int], tuple[int, Path]] = {}
    for index, part in enumerate(parts):
        for record in part.records:
            key = (record.case_id, record.arm, record.repeat)
            number, previous = where.setdefault(key, (index, part.path))
            if number != index:
                raise MergeRefused(
                    f"case {record.case_id} ({record.arm}, repeat {record.repeat + 1}) is in both "
                    f"{previous} and {part.path}: shards must not overlap"
                )
    tests: dict[str, tuple[int, Path]] = {}
    for index, part in enumerate(parts):
        for test_id in (part.header.get("tests") or {}).get("ids") or ():
            number, previous = tests.setdefault(test_id, (index, part.path))
            if number != index:
                raise MergeRefused(
                    f"test {test_id} was selected in both {previous} and {part.path}: shards "
                    "must not overlap"
                )


def _cassette_lines(parts: Sequence[Part]) -> list[str] | None:
    if any(part.header.get("cassettes") is None for part in parts):
        return None
    by_path: dict[str, tuple[str, Path]] = {}
    for part in parts:
        for line in part.header["cassettes"]:
            path = line.rsplit(" ", 1)[0]
            previous = by_path.setdefault(path, (line, part.path))
            if previous[0] != line:
                raise MergeRefused(
                    f"the recording {path} differs between {previous[1]} and {part.path}"
                )
    return [line for line, _ in by_path.values()]


def _provenance(parts: Sequence[Part]) -> dict[str, Any]:
    from pytest_modelgate.verdict.provenance import cassette_lines_digest, tests_digest

    first = parts[0].header
    lines = _cassette_lines(parts)
    ids: set[str] = set()
    known = True
    for part in parts:
        tests = part.header.get("tests") or {}
        if tests.get("ids") is None:
            known = False
        else:
            ids.update(tests["ids"])
    return {
        "git": first.get("git"),
        "config_digest": first["config_digest"],
        "cassettes_digest": None if lines is None else cassette_lines_digest(lines),
        "tests_digest": tests_digest(ids) if known else None,
        "tests_collected": len(ids) if known else None,
    }


def _identity(value: Any) -> ModelIdentity | None:
    return None if value is None else ModelIdentity.model_validate(value)


def _started_at(parts: Sequence[Part]) -> datetime:
    moments = []
    for part in parts:
        try:
            moments.append(datetime.fromisoformat(str(part.header["started_at"])))
        except (KeyError, ValueError):
            continue
    return min(moments) if moments else datetime.now(timezone.utc)


def merge_parts(parts: Sequence[Part], *, expect_parts: int | None = None) -> MergeResult:
    """Judge the union of ``parts`` as one run; ``MergeRefused`` when they are not one run."""
    from pytest_modelgate.config.settings import ModelgateConfig
    from pytest_modelgate.judge.decide import judged_verdict
    from pytest_modelgate.session import EXIT_ERROR

    if not parts:
        raise MergeRefused("no records parts to merge (did every shard fail to upload?)")
    if expect_parts is not None and len(parts) != expect_parts:
        raise MergeRefused(
            f"{len(parts)} records part(s) ({_names(parts)}), --expect-parts says {expect_parts}: "
            "a shard is missing or one is extra"
        )
    _check_same(parts)
    _check_disjoint(parts)
    first = parts[0].header
    settings = first["settings"]
    try:
        config = ModelgateConfig.model_validate(settings["config"])
    except ValueError as exc:
        raise MergeRefused(
            f"{parts[0].path}: the configuration in the header is invalid: {exc}"
        ) from None
    stable = [r for p in parts for r in p.records if r.arm == "stable"]
    candidate = [r for p in parts for r in p.records if r.arm == "candidate"]
    common = {
        "run_id": uuid.uuid4().hex,
        "kind": first.get("kind", "gate"),
        "stable": _identity(first.get("stable")),
        "candidate": _identity(first.get("candidate")),
        "mode": first["settings"]["mode"],
        "repeat": first["settings"]["repeat"],
        "strict": first["settings"]["strict"],
        "plugin_version": first["plugin_version"],
        "provenance": _provenance(parts),
    }
    started_at = _started_at(parts)
    has_candidate = first.get("candidate") is not None
    incomplete = [p for p in parts if not p.header["complete"] or p.header["problems"]]
    if incomplete:
        from pytest_modelgate.verdict.model import error_verdict

        reasons = [
            f"shard {p.path} is incomplete: "
            + ("; ".join(p.header["problems"]) or "its run did not finish")
            for p in incomplete
        ]
        verdict = error_verdict(
            reasons[0],
            started_at=started_at,
            finished_at=datetime.now(timezone.utc),
            exit_status=EXIT_ERROR,
            **common,
        )
        verdict["reasons"] = reasons
        return MergeResult(verdict, [*stable, *candidate], EXIT_ERROR)
    # pytest's status matters only without a candidate (a smoke run keeps pytest's semantics).
    statuses = {int(p.header.get("pytest_exit_status", 0)) for p in parts}
    pytest_status = 1 if 1 in statuses else 0
    verdict, exit_status = judged_verdict(
        (stable, candidate),
        limits=config.gate,
        strict=bool(settings["strict"]),
        has_candidate=has_candidate,
        pytest_status=pytest_status,
        started_at=started_at,
        common=common,
        allowances=settings.get("allowances") or (),
    )
    return MergeResult(verdict, [*stable, *candidate], exit_status)


def secret_values(
    parts: Sequence[Part], environ: Mapping[str, str] = os.environ
) -> tuple[str, ...]:
    """Values of the models' key variables set here: scrubbed from what the merge writes."""
    values: list[str] = []
    if not parts:
        return ()
    settings = parts[0].header.get("settings") or {}
    for arm in ("stable", "candidate"):
        model = settings.get(arm) or {}
        variables = [model.get("api_key_env"), *(model.get("api_key_env_fallbacks") or ())]
        for variable in variables:
            value = environ.get(str(variable), "").strip() if variable else ""
            if value and value not in values:
                values.append(value)
    return tuple(values)


def write_result(path: Path, result: MergeResult, parts: Sequence[Part]) -> None:
    """Write the merged records next to ``path``, then the verdict naming them (atomically).

    Everything written is scrubbed of the key values set here, as a run scrubs its own files.
    """
    from pytest_modelgate.judge.decide import record_line
    from pytest_modelgate.redaction import redactor_for
    from pytest_modelgate.verdict.model import write_text_atomic, write_verdict_atomic

    redactor = redactor_for(secret_values(parts))
    verdict = redactor.scrub_value(result.verdict)
    records = Path(path).with_name(f"{Path(path).stem}.records.jsonl")
    write_text_atomic(records, "".join(record_line(r, redactor) for r in result.records))
    verdict["records_file"] = records.name
    write_verdict_atomic(Path(path), verdict)


def refusal_verdict(reason: str, parts: Sequence[Part]) -> dict[str, Any]:
    """The ``error`` verdict of a refused merge, with what the first readable part says."""
    from pytest_modelgate import __version__
    from pytest_modelgate.session import EXIT_ERROR
    from pytest_modelgate.verdict.model import error_verdict

    header = parts[0].header if parts else {}
    now = datetime.now(timezone.utc)
    return error_verdict(
        f"modelgate merge refused the parts: {reason}",
        run_id=uuid.uuid4().hex,
        stable=_identity(header.get("stable")),
        candidate=_identity(header.get("candidate")),
        mode=str(header.get("mode", "replay")),
        repeat=int(header.get("repeat", 1)),
        strict=bool(header.get("strict", False)),
        started_at=now,
        finished_at=now,
        exit_status=EXIT_ERROR,
        plugin_version=__version__,
        kind=str(header.get("kind", "gate")),
    )
