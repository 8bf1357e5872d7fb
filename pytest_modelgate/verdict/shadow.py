"""``modelgate analyze``: shadow logs judged by the gate's paired judge, as a ``shadow`` verdict.

Each line of a gateway's shadow log (``docs/gateway.md``, "The shadow log") is one pair: a
user's request answered by the route's stable model and the same request sent to the candidate
in the background. A pair is a paired case: the same input on both arms, exactly what the gate's
judge compares. ``analyze_logs`` reads the logs, keeps the pairs of one route and one model pair,
turns each pair into the two arms' test records and judges them with the same ``PairedJudge``
and margins as the gate, so the verdict has the gate's schema (``kind: shadow``) and ``modelgate
check`` and ``modelgate rollout`` work on it.

What is read, and what is refused:

* a line that is not JSON, is torn (a crash mid-write leaves a partial last line) or lacks a
  field is skipped, counted and reported with its file and line number, never a crash;
* lines of other routes are skipped and counted when ``route`` is given; without it, a log of
  several routes is refused (say which one);
* a pair of another stable/candidate model pair than the first is refused, naming file and line;
* no pair at all: an ``error`` verdict (fail closed).

Large logs: the engine (DuckDB, the ``duckdb`` extra, or a streaming pure-Python reader) counts
every line and every pair and computes whole-log figures, then the judge receives at most
``max_pairs`` pairs: all of them when the log is smaller, else a uniform random sample (seeded by
the logs' size, so a rerun gives the same verdict). A uniform sample of independent pairs is a
valid sample of the traffic (the judge's intervals are for the sample's size, so wider); the
verdict's ``shadow`` section says how many pairs were seen and how many judged.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, get_args

from pytest_modelgate.calls.records import (
    CallRecord,
    ErrorKind,
    ModelIdentity,
    TestRecord,
    Usage,
)
from pytest_modelgate.errors import ModelgateError

__all__ = ["AnalyzeRefused", "ShadowRead", "analyze_logs", "read_logs"]

Engine = Literal["auto", "python", "duckdb"]
# Pairs the judge receives at most (the rest are counted, and summarised by the engine).
DEFAULT_MAX_PAIRS = 5_000
# Above this many bytes of log, "auto" uses DuckDB when it is installed.
_DUCKDB_FROM_BYTES = 20_000_000
_SHOWN_PROBLEMS = 5
_ERROR_KINDS = frozenset(get_args(ErrorKind))


class AnalyzeRefused(ModelgateError):
    """The logs cannot be judged as one comparison (mixed routes or models, unreadable)."""


@dataclass
class ShadowRead:
    """What the engine read: the pairs for the judge and the counts of everything."""

    route: str | None = None
    stable: str | None = None
    candidate: str | None = None
    lines: int = 0
    pairs_seen: int = 0
    other_routes: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    engine: str = "python"

    def skip(self, where: str, why: str) -> None:
        self.skipped += 1
        if len(self.problems) < _SHOWN_PROBLEMS:
            self.problems.append(f"{where}: {why}")


def _problem(pair: Any) -> str | None:
    """Why a parsed line is not a usable pair (None: it is one)."""
    if not isinstance(pair, dict):
        return "not a JSON object"
    if not isinstance(pair.get("route"), str):
        return "no route"
    for side in ("user", "shadow"):
        entry = pair.get(side)
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
            return f"no {side}.model"
        latency = entry.get("latency_ms")
        if latency is not None and not isinstance(latency, (int, float)):
            return f"{side}.latency_ms is not a number"
    return None


def _models(pair: Mapping[str, Any]) -> tuple[str, str]:
    # Format v1 names the route's stable model; older lines only the model that answered.
    stable = pair.get("stable") or pair["user"]["model"]
    return str(stable), str(pair.get("candidate") or pair["shadow"]["model"])


class _Collector:
    """Route and model-pair checks and the seeded reservoir of pairs for the judge."""

    def __init__(self, read: ShadowRead, route: str | None, max_pairs: int, seed: int) -> None:
        self.read = read
        self.route = route
        self.max_pairs = max_pairs
        self._random = random.Random(seed)
        # The first route seen and where, when no route was asked for.
        self._first: tuple[str, str] | None = None

    def add(self, pair: dict[str, Any], where: str) -> None:
        read = self.read
        name = pair["route"]
        if self.route is not None and name != self.route:
            read.other_routes += 1
            return
        if self.route is None:
            if self._first is None:
                self._first = (name, where)
            elif name != self._first[0]:
                raise AnalyzeRefused(
                    f"{where}: route {name!r}, but {self._first[1]} was route "
                    f"{self._first[0]!r}: the logs hold several routes; choose one with --route"
                )
        stable, candidate = _models(pair)
        if read.stable is None:
            read.route, read.stable, read.candidate = name, stable, candidate
        elif (stable, candidate) != (read.stable, read.candidate):
            raise AnalyzeRefused(
                f"{where}: a pair of {stable} and {candidate}, but the first pair of route "
                f"{name!r} was {read.stable} and {read.candidate}: one analysis judges one "
                "model pair"
            )
        read.pairs_seen += 1
        # Algorithm R: after n pairs every pair is in the sample with probability max/n.
        if len(read.pairs) < self.max_pairs:
            read.pairs.append(pair)
        else:
            slot = self._random.randrange(read.pairs_seen)
            if slot < self.max_pairs:
                read.pairs[slot] = pair


def _python_read(paths: Sequence[Path], route: str | None, max_pairs: int, seed: int) -> ShadowRead:
    read = ShadowRead(engine="python")
    collector = _Collector(read, route, max_pairs, seed)
    sums = _Summary()
    for path in paths:
        with path.open("rb") as stream:
            for number, raw in enumerate(stream, start=1):
                read.lines += 1
                where = f"{path}:{number}"
                if not raw.endswith(b"\n"):
                    # Torn: the writer died mid-line (every whole line ends with a newline).
                    read.skip(where, "a partial line (no newline at its end)")
                    continue
                try:
                    pair = json.loads(raw)
                except json.JSONDecodeError as exc:
                    read.skip(where, f"not JSON ({exc})")
                    continue
                except ValueError as exc:  # bytes that are not UTF-8
                    read.skip(where, f"not JSON ({exc})")
                    continue
                why = _problem(pair)
                if why is not None:
                    read.skip(where, why)
                    continue
                seen = read.pairs_seen
                collector.add(pair, where)
                if read.pairs_seen > seen:
                    sums.add(pair)
    read.summary = sums.figures()
    return read


class _Summary:
    """Whole-log figures of the pure-Python engine (the same DuckDB computes in SQL)."""

    def __init__(self) -> None:
        self.n = 0
        self.errors = {"stable": 0, "candidate": 0}
        self.latency = {"stable": [0.0, 0], "candidate": [0.0, 0]}

    def add(self, pair: Mapping[str, Any]) -> None:
        self.n += 1
        for arm, side in (("stable", "user"), ("candidate", "shadow")):
            entry = pair[side]
            if entry.get("error_kind") is not None:
                self.errors[arm] += 1
            latency = entry.get("latency_ms")
            if latency is not None:
                self.latency[arm][0] += float(latency)
                self.latency[arm][1] += 1

    def figures(self) -> dict[str, Any]:
        return {
            arm: {
                "error_rate": round(self.errors[arm] / self.n, 6) if self.n else None,
                "mean_latency_ms": (
                    round(self.latency[arm][0] / self.latency[arm][1], 1)
                    if self.latency[arm][1]
                    else None
                ),
            }
            for arm in ("stable", "candidate")
        }


def _duckdb_read(paths: Sequence[Path], route: str | None, max_pairs: int, seed: int) -> ShadowRead:
    """DuckDB reads the logs in one scan per step; Python sees only the sampled pairs."""
    import duckdb

    read = ShadowRead(engine="duckdb")
    files = [str(p) for p in paths]
    read.lines = sum(_count_lines(p) for p in paths)
    con = duckdb.connect()
    # A view cannot take prepared parameters: the file names go in as quoted SQL literals.
    listed = ", ".join("'" + name.replace("'", "''") + "'" for name in files)
    con.execute(
        f"CREATE TEMP VIEW raw AS SELECT * FROM read_json([{listed}], "
        "format = 'newline_delimited', columns = {route: 'VARCHAR', stable: 'VARCHAR', "
        "candidate: 'VARCHAR', \"at\": 'VARCHAR', \"case\": 'VARCHAR', prompt_language: 'VARCHAR', "
        "\"user\": 'JSON', shadow: 'JSON'}, ignore_errors = true)"
    )
    con.execute(
        "CREATE TEMP VIEW pairs AS SELECT route, "
        "coalesce(stable, json_extract_string(\"user\", '$.model')) AS stable_model, "
        "coalesce(candidate, json_extract_string(shadow, '$.model')) AS candidate_model, "
        '"at", "case", prompt_language, "user", shadow FROM raw WHERE route IS NOT NULL '
        "AND json_extract_string(\"user\", '$.model') IS NOT NULL "
        "AND json_extract_string(shadow, '$.model') IS NOT NULL"
    )
    valid = con.execute("SELECT count(*) FROM pairs").fetchone()
    read.skipped = read.lines - (int(valid[0]) if valid else 0)
    if read.skipped:
        read.problems.append(
            f"{read.skipped} line(s) not JSON, torn or without route/user/shadow "
            "(DuckDB does not give their numbers; the python engine does)"
        )
    groups = con.execute(
        "SELECT route, stable_model, candidate_model, count(*) FROM pairs "
        "GROUP BY ALL ORDER BY count(*) DESC"
    ).fetchall()
    chosen = [g for g in groups if route is None or g[0] == route]
    read.other_routes = sum(int(g[3]) for g in groups if route is not None and g[0] != route)
    names = sorted({g[0] for g in chosen})
    if route is None and len(names) > 1:
        raise AnalyzeRefused(
            f"{', '.join(files)}: the logs hold several routes ({', '.join(names)}); "
            "choose one with --route"
        )
    if len(chosen) > 1:
        first, other = chosen[0], chosen[1]
        raise AnalyzeRefused(
            f"{', '.join(files)}: route {first[0]!r} has pairs of {first[1]} and {first[2]} "
            f"({first[3]}) and of {other[1]} and {other[2]} ({other[3]}): one analysis judges "
            "one model pair"
        )
    if not chosen:
        return read
    read.route, read.stable, read.candidate = chosen[0][0], chosen[0][1], chosen[0][2]
    read.pairs_seen = int(chosen[0][3])
    sample = ""
    if read.pairs_seen > max_pairs:
        sample = f" USING SAMPLE reservoir({int(max_pairs)} ROWS) REPEATABLE ({int(seed)})"
    rows = con.execute(
        'SELECT route, stable_model, candidate_model, "at", "case", prompt_language, "user", '
        f"shadow FROM pairs WHERE route = ?{sample}",
        [read.route],
    ).fetchall()
    read.pairs = [
        {
            "route": r[0],
            "stable": r[1],
            "candidate": r[2],
            "at": r[3],
            "case": r[4],
            "prompt_language": r[5],
            "user": json.loads(r[6]),
            "shadow": json.loads(r[7]),
        }
        for r in rows
    ]
    read.summary = _duckdb_summary(con, read.route)
    con.close()
    return read


def _duckdb_summary(con: Any, route: str) -> dict[str, Any]:
    """Whole-log figures of one route's pairs, computed by DuckDB."""
    figures = con.execute(
        "SELECT avg(CASE WHEN json_extract_string(\"user\", '$.error_kind') IS NULL THEN 0 "
        "ELSE 1 END), avg(CASE WHEN json_extract_string(shadow, '$.error_kind') IS NULL "
        "THEN 0 ELSE 1 END), avg(CAST(json_extract(\"user\", '$.latency_ms') AS DOUBLE)), "
        "avg(CAST(json_extract(shadow, '$.latency_ms') AS DOUBLE)) FROM pairs WHERE route = ?",
        [route],
    ).fetchone()
    assert figures is not None
    return {
        "stable": {"error_rate": _round(figures[0], 6), "mean_latency_ms": _round(figures[2], 1)},
        "candidate": {
            "error_rate": _round(figures[1], 6),
            "mean_latency_ms": _round(figures[3], 1),
        },
    }


def _round(value: Any, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _count_lines(path: Path) -> int:
    count = 0
    last = b"\n"
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (0 if last == b"\n" else 1)


def read_logs(
    paths: Sequence[Path],
    *,
    route: str | None = None,
    max_pairs: int = DEFAULT_MAX_PAIRS,
    engine: Engine = "auto",
) -> ShadowRead:
    """Read the logs with ``engine`` (``auto``: DuckDB for large logs when installed)."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise AnalyzeRefused(f"no such shadow log: {', '.join(missing)}")
    size = sum(p.stat().st_size for p in paths)
    # The seed is what the logs are: the same logs give the same sample.
    seed = size % (2**31)
    if engine == "auto":
        engine = "duckdb" if size >= _DUCKDB_FROM_BYTES and _has_duckdb() else "python"
    if engine == "duckdb":
        if not _has_duckdb():
            raise AnalyzeRefused(
                "--engine duckdb needs DuckDB: pip install 'pytest-modelgate[duckdb]'"
            )
        read = _duckdb_read(paths, route, max_pairs, seed)
    else:
        read = _python_read(paths, route, max_pairs, seed)
    # One order whatever the engine (the judge's resampling follows the order of the cases).
    read.pairs.sort(key=_pair_order)
    return read


def _pair_order(pair: Mapping[str, Any]) -> tuple[str, str, str]:
    return (
        str(pair.get("at") or ""),
        str(pair.get("case") or ""),
        json.dumps(pair, sort_keys=True),
    )


def _has_duckdb() -> bool:
    import importlib.util

    return importlib.util.find_spec("duckdb") is not None


# ---------------------------------------------------------------------------------------------
# pairs -> records -> verdict


def _records(pairs: Sequence[Mapping[str, Any]]) -> Iterator[tuple[TestRecord, TestRecord]]:
    for index, pair in enumerate(pairs):
        case = f"{pair.get('case') or 'pair'}-{index:07d}"
        test_id = f"shadow::{pair['route']}[{case}]"
        language = pair.get("prompt_language")
        arms = (("stable", "user", _models(pair)[0]), ("candidate", "shadow", _models(pair)[1]))
        built = []
        for arm, side, model in arms:
            entry = pair[side]
            error = entry.get("error_kind")
            error_kind: ErrorKind | None = None
            if error is not None:
                # A kind this version does not know still counts as a failed call.
                error_kind = error if error in _ERROR_KINDS else "invalid_response"
            call = CallRecord(
                test_id=test_id,
                case_id=case,
                arm=arm,  # type: ignore[arg-type]
                model=model,
                call_index=0,
                started_at=0.0,
                latency_ms=entry.get("latency_ms"),
                ttft_ms=entry.get("ttft_ms"),
                error_kind=error_kind,
                usage=Usage(
                    prompt_tokens=entry.get("prompt_tokens"),
                    completion_tokens=entry.get("completion_tokens"),
                ),
                cost_usd=entry.get("cost_usd"),
                json_valid=entry.get("json_valid"),
                schema_valid=entry.get("schema_valid"),
                tool_calls=tuple(entry.get("tool_calls") or ()),
                streamed=entry.get("ttft_ms") is not None,
                prompt_language=language,
                reply_language=entry.get("reply_language"),
            )
            ok = error is None and entry.get("contract_ok") is not False
            built.append(
                TestRecord(
                    test_id=test_id,
                    case_id=case,
                    workflow=str(pair["route"]),
                    arm=arm,  # type: ignore[arg-type]
                    model=model,
                    outcome="passed" if ok else "failed",
                    calls=(call,),
                    language=language,
                )
            )
        yield built[0], built[1]


@dataclass
class AnalyzeResult:
    """The verdict (validated by the writer) and the exit status it means."""

    verdict: dict[str, Any]
    exit_status: int
    read: ShadowRead


def analyze_logs(
    paths: Sequence[Path],
    *,
    route: str | None = None,
    config_path: Path | None = None,
    max_pairs: int = DEFAULT_MAX_PAIRS,
    engine: Engine = "auto",
) -> AnalyzeResult:
    """Judge the logs' pairs; ``AnalyzeRefused`` for what cannot be one comparison."""
    from pytest_modelgate import __version__
    from pytest_modelgate.config.settings import GateLimits, load_config
    from pytest_modelgate.judge.decide import judged_verdict
    from pytest_modelgate.session import EXIT_ERROR
    from pytest_modelgate.verdict.model import error_verdict

    started_at = datetime.now(timezone.utc)
    limits = GateLimits()
    config = None
    if config_path is not None:
        config = load_config(config_path)
        limits = config.gate
        if route is not None and route not in config.routes:
            raise AnalyzeRefused(f"{config_path}: no route {route!r} under routes:")
    read = read_logs(paths, route=route, max_pairs=max_pairs, engine=engine)
    if config is not None and read.route is not None and read.route in config.routes:
        configured = config.routes[read.route].stable
        if read.stable is not None and configured.lower() != read.stable.lower():
            raise AnalyzeRefused(
                f"the logs' pairs of route {read.route!r} compare {read.stable}, but "
                f"{config_path} routes it to stable {configured}"
            )
    common: dict[str, Any] = {
        "run_id": uuid.uuid4().hex,
        "kind": "shadow",
        "stable": ModelIdentity(model=read.stable or "unknown"),
        "candidate": ModelIdentity(model=read.candidate or "unknown"),
        "mode": "live",
        "repeat": 1,
        "strict": False,
        "plugin_version": __version__,
        "provenance": {},
    }
    section = _section(paths, read, max_pairs)
    if not read.pairs:
        where = f" of route {route!r}" if route else ""
        reason = (
            f"no usable shadow pair{where} in {', '.join(map(str, paths))}: {read.lines} "
            f"line(s), {read.skipped} skipped"
            + (f" ({'; '.join(read.problems)})" if read.problems else "")
        )
        verdict = error_verdict(
            reason,
            started_at=started_at,
            finished_at=datetime.now(timezone.utc),
            exit_status=EXIT_ERROR,
            **common,
        )
        verdict["shadow"] = section
        return AnalyzeResult(verdict, EXIT_ERROR, read)
    stable: list[TestRecord] = []
    candidate: list[TestRecord] = []
    for s_record, c_record in _records(read.pairs):
        stable.append(s_record)
        candidate.append(c_record)
    verdict, exit_status = judged_verdict(
        (stable, candidate),
        limits=limits,
        strict=False,
        has_candidate=True,
        pytest_status=0,
        started_at=started_at,
        common=common,
    )
    if read.skipped:
        verdict["reasons"].append(
            f"{read.skipped} shadow log line(s) skipped (corrupt, torn or incomplete): "
            + "; ".join(read.problems)
        )
    verdict["shadow"] = section
    return AnalyzeResult(verdict, exit_status, read)


def _section(paths: Sequence[Path], read: ShadowRead, max_pairs: int) -> dict[str, Any]:
    return {
        "logs": [str(p) for p in paths],
        "route": read.route,
        "engine": read.engine,
        "lines": read.lines,
        "pairs": read.pairs_seen,
        "judged_pairs": len(read.pairs),
        "sampled": read.pairs_seen > len(read.pairs),
        "max_pairs": max_pairs,
        "other_routes": read.other_routes,
        "skipped_lines": read.skipped,
        "skipped_examples": list(read.problems),
        "whole_log": read.summary,
    }
