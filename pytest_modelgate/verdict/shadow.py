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

Every pair is judged, however many: the engine (DuckDB, the ``duckdb`` extra, or a streaming
pure-Python reader) turns the pairs into numpy columns (``verdict/shadowpairs.py``), which are
grouped by case and aggregated per case; the judge takes the per-case aggregates
(``PairedJudge.judge_aggregates``), never a record per pair.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pytest_modelgate.calls.records import ModelIdentity
from pytest_modelgate.errors import ModelgateError
from pytest_modelgate.verdict.shadowpairs import (
    FLAGS,
    NOT_LOGGED,
    NUMBERS,
    PackedStrings,
    PairRows,
    PairTable,
    ShadowCases,
    SideColumns,
    error_kind,
    group_by_case,
)

__all__ = ["AnalyzeRefused", "ShadowRead", "analyze_logs", "read_logs"]

Engine = Literal["auto", "python", "duckdb"]
# DuckDB's memory while it reads (bench/analyze_scale.py: a million pairs fit).
_DUCKDB_MEMORY = "300MB"
# Above this many bytes of log, "auto" uses DuckDB when it is installed.
_DUCKDB_FROM_BYTES = 20_000_000
_SHOWN_PROBLEMS = 5


class AnalyzeRefused(ModelgateError):
    """The logs cannot be judged as one comparison (mixed routes or models, unreadable)."""


@dataclass
class ShadowRead:
    """What the engine read: the route's pairs as columns, and the counts of everything."""

    route: str | None = None
    stable: str | None = None
    candidate: str | None = None
    lines: int = 0
    pairs_seen: int = 0
    other_routes: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    table: PairTable | None = None
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
        if latency is not None and (
            isinstance(latency, bool) or not isinstance(latency, int | float)
        ):
            return f"{side}.latency_ms is not a number"
    return None


def _models(pair: Mapping[str, Any]) -> tuple[str, str]:
    # Format v1 names the route's stable model; older lines only the model that answered.
    stable = pair.get("stable") or pair["user"]["model"]
    return str(stable), str(pair.get("candidate") or pair["shadow"]["model"])


class _Collector:
    """Route and model-pair checks; the pairs that pass go into the columns."""

    def __init__(self, read: ShadowRead, route: str | None) -> None:
        self.read = read
        self.route = route
        self.rows = PairRows()
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
        self.rows.add(pair)


def _python_read(paths: Sequence[Path], route: str | None) -> ShadowRead:
    read = ShadowRead(engine="python")
    collector = _Collector(read, route)
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
                except ValueError as exc:  # not JSON, or bytes that are not UTF-8
                    read.skip(where, f"not JSON ({exc})")
                    continue
                why = _problem(pair)
                if why is not None:
                    read.skip(where, why)
                    continue
                collector.add(pair, where)
    read.table = collector.rows.table()
    return read


def _number_sql(side: str, name: str) -> str:
    """A side's number, NaN where it is not logged or not a number (as ``shadowpairs``)."""
    return (
        f"CASE WHEN json_type({side}, '$.{name}') IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
        f"THEN CAST(json_extract({side}, '$.{name}') AS DOUBLE) ELSE 'NaN'::DOUBLE END"
    )


def _flag_sql(side: str, name: str) -> str:
    """A side's true/false as 1/0, NOT_LOGGED where it is not a JSON boolean."""
    return (
        f"CASE WHEN json_type({side}, '$.{name}') = 'BOOLEAN' THEN "
        f"CAST(CAST(json_extract({side}, '$.{name}') AS BOOLEAN) AS TINYINT) "
        f"ELSE {NOT_LOGGED} END"
    )


# The columns of shadowpairs.SideColumns that hold strings: name -> the SQL of one side's value.
_STRING_SQL = {
    "error": "CASE WHEN coalesce(json_type({side}, '$.error_kind'), 'NULL') <> 'NULL' "
    "THEN json_extract_string({side}, '$.error_kind') END",
    "tools": "CASE WHEN json_type({side}, '$.tool_calls') = 'ARRAY' THEN nullif(array_to_string("
    "json_extract_string({side}, '$.tool_calls[*]'), chr(31)), '') END",
    "reply": "CASE WHEN json_type({side}, '$.reply_language') = 'VARCHAR' "
    "THEN json_extract_string({side}, '$.reply_language') END",
}


def _duckdb_read(paths: Sequence[Path], route: str | None) -> ShadowRead:
    """DuckDB reads the logs and extracts every pair's figures in SQL; Python receives numpy
    columns (strings as codes into their few distinct values), never a row per pair.

    The extracted table lives in a database file in a temporary directory, with DuckDB's
    memory bounded (``_DUCKDB_MEMORY``), so its pages spill to disk instead of adding to the
    columns' memory; logs whose lines need more (long texts logged) are read again without
    the bound rather than refused.
    """
    import duckdb

    try:
        return _duckdb_pass(paths, route, _DUCKDB_MEMORY)
    except duckdb.OutOfMemoryException:
        return _duckdb_pass(paths, route, None)


def _duckdb_pass(paths: Sequence[Path], route: str | None, memory: str | None) -> ShadowRead:
    import tempfile

    import duckdb

    read = ShadowRead(engine="duckdb")
    files = [str(p) for p in paths]
    read.lines = sum(_count_lines(p) for p in paths)
    with tempfile.TemporaryDirectory(prefix="modelgate-analyze-") as scratch:
        con = duckdb.connect(str(Path(scratch) / "pairs.duckdb"))
        try:
            if memory is not None:
                con.execute(f"SET memory_limit = '{memory}'")
            quoted = scratch.replace("'", "''")
            con.execute(f"SET temp_directory = '{quoted}'")
            _duckdb_scan(con, read, files, route)
        finally:
            con.close()
    return read


def _duckdb_scan(con: Any, read: ShadowRead, files: list[str], route: str | None) -> None:
    """Fill ``read`` from the logs ``files`` through ``con``."""
    con.execute("SET TimeZone = 'UTC'")  # a time without an offset is UTC, as in Python
    # A view cannot take prepared parameters: the file names go in as quoted SQL literals.
    listed = ", ".join("'" + name.replace("'", "''") + "'" for name in files)
    con.execute(
        f"CREATE TEMP VIEW raw AS SELECT * FROM read_json([{listed}], "
        "format = 'newline_delimited', columns = {route: 'VARCHAR', stable: 'VARCHAR', "
        "candidate: 'VARCHAR', \"at\": 'JSON', \"case\": 'JSON', prompt_language: 'JSON', "
        "\"user\": 'JSON', shadow: 'JSON'}, ignore_errors = true)"
    )
    # The rules of _problem: a route, both sides' models, latencies that are numbers.
    latency_ok = " AND ".join(
        f"coalesce(json_type({side}, '$.latency_ms') IN ('BIGINT', 'UBIGINT', 'DOUBLE', "
        "'NULL'), true)"
        for side in ('"user"', "shadow")
    )
    con.execute(
        "CREATE TEMP VIEW pairs AS SELECT route, "
        "coalesce(stable, json_extract_string(\"user\", '$.model')) AS stable_model, "
        "coalesce(candidate, json_extract_string(shadow, '$.model')) AS candidate_model, "
        '"at", "case", prompt_language, "user", shadow FROM raw WHERE route IS NOT NULL '
        "AND json_type(\"user\", '$.model') = 'VARCHAR' "
        f"AND json_type(shadow, '$.model') = 'VARCHAR' AND {latency_ok}"
    )
    valid = con.execute("SELECT count(*) FROM pairs").fetchone()
    read.skipped = read.lines - (int(valid[0]) if valid else 0)
    if read.skipped:
        read.problems.append(
            f"{read.skipped} line(s) not JSON, torn, or without a route, both sides' models "
            "or numeric latencies (DuckDB does not give their numbers; the python engine does)"
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
    if chosen:
        read.route, read.stable, read.candidate = chosen[0][0], chosen[0][1], chosen[0][2]
        read.pairs_seen = int(chosen[0][3])
        read.table = _duckdb_table(con, read.route)


def _duckdb_table(con: Any, route: str) -> PairTable:
    """The route's pairs as a ``PairTable``: one scan of the logs extracts every pair's figures
    into a table of scalars, then each column is fetched on its own (strings as codes into
    their distinct values, the case ids packed in one string), so that no Python object is
    made per pair and no more than one column is in transit at a time."""
    sides = {arm: side for arm, side in (("stable", '"user"'), ("candidate", "shadow"))}
    selected = [
        "json_extract_string(\"case\", '$') AS case_id",
        "coalesce(CAST(epoch_us(TRY_CAST(json_extract_string(\"at\", '$') AS TIMESTAMPTZ)) "
        "AS DOUBLE), 'NaN'::DOUBLE) AS at_us",
        "CASE WHEN json_type(prompt_language) = 'VARCHAR' "
        "THEN json_extract_string(prompt_language, '$') END AS language",
    ]
    for arm, side in sides.items():
        selected += [f"{_number_sql(side, n)} AS {arm}_{n}" for n in NUMBERS]
        selected += [f"{_flag_sql(side, n)} AS {arm}_{n}" for n in FLAGS]
        selected += [f"{sql.format(side=side)} AS {arm}_{n}" for n, sql in _STRING_SQL.items()]
    # A table keeps the order of the lines (``rowid``); no window over the scan, which would
    # hold every row at once.
    con.execute(
        f"CREATE TABLE p AS SELECT {', '.join(selected)} FROM pairs WHERE route = ?",
        [route],
    )
    # A pair without a case is a case of its own, numbered as the Python engine numbers it.
    con.execute(
        "UPDATE p SET case_id = 'pair-' || lpad(CAST(rowid AS VARCHAR), 7, '0') "
        "WHERE case_id IS NULL"
    )
    con.execute(
        "CREATE TABLE cases AS SELECT case_id, CAST(row_number() OVER (ORDER BY case_id) - 1 "
        "AS BIGINT) AS code FROM (SELECT DISTINCT case_id FROM p)"
    )

    def column(expression: str, dtype: Any, parameters: Sequence[Any] = ()) -> Any:
        found = con.execute(f"SELECT {expression} AS x FROM p ORDER BY p.rowid", parameters)
        return np.asarray(found.fetchnumpy()["x"], dtype=dtype)

    def strings(name: str) -> Any:
        # Each value as a code into the column's few distinct values (None where none).
        values = con.execute(
            f"SELECT DISTINCT {name} FROM p WHERE {name} IS NOT NULL ORDER BY {name}"
        ).fetchall()
        vocab = np.empty(len(values) + 1, dtype=object)
        vocab[:-1] = [str(v[0]) for v in values]
        codes = column(
            f"CAST(coalesce(list_position(CAST(? AS VARCHAR[]), {name}), 0) - 1 AS INTEGER)",
            np.int64,
            [vocab[:-1].tolist()],
        )
        return vocab[codes]  # code -1 reads the None at the end

    side_columns = {
        arm: SideColumns(
            error=_known_kinds(strings(f"{arm}_error")),
            numbers={n: column(f"{arm}_{n}", np.float64) for n in NUMBERS},
            flags={n: column(f"{arm}_{n}", np.int8) for n in FLAGS},
            tools=strings(f"{arm}_tools"),
            reply_language=strings(f"{arm}_reply"),
        )
        for arm in sides
    }
    # Case codes in id order, which is the judge's case order: DuckDB compares VARCHAR
    # bytewise, and UTF-8 keeps the code-point order Python sorts str by.
    found = con.execute("SELECT c.code AS x FROM p JOIN cases c USING (case_id) ORDER BY p.rowid")
    case = np.asarray(found.fetchnumpy()["x"], dtype=np.int64)
    packed = con.execute("SELECT string_agg(case_id, '' ORDER BY code) FROM cases")
    row = packed.fetchone()
    lengths = con.execute("SELECT length(case_id) AS x FROM cases ORDER BY code")
    case_ids = PackedStrings(
        str(row[0]) if row and row[0] is not None else "",
        np.asarray(lengths.fetchnumpy()["x"], dtype=np.int64),
    )
    return PairTable(
        case=case,
        case_ids=case_ids,
        at=column("at_us", np.float64),
        language=strings("language"),
        sides=side_columns,
    )


def _known_kinds(kinds: Any) -> Any:
    """Error kinds as ``shadowpairs.error_kind`` reads them (an unknown one is
    ``invalid_response``), mapped once per distinct kind."""
    mapped = kinds.copy()
    for kind in {k for k in kinds.tolist() if k is not None}:
        mapped[kinds == kind] = error_kind(kind)
    return mapped


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
    engine: Engine = "auto",
) -> ShadowRead:
    """Read the logs with ``engine`` (``auto``: DuckDB for large logs when installed)."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise AnalyzeRefused(f"no such shadow log: {', '.join(missing)}")
    if engine == "auto":
        size = sum(p.stat().st_size for p in paths)
        engine = "duckdb" if size >= _DUCKDB_FROM_BYTES and _has_duckdb() else "python"
    if engine == "duckdb":
        if not _has_duckdb():
            raise AnalyzeRefused(
                "--engine duckdb needs DuckDB: pip install 'pytest-modelgate[duckdb]'"
            )
        return _duckdb_read(paths, route)
    return _python_read(paths, route)


def _has_duckdb() -> bool:
    import importlib.util

    return importlib.util.find_spec("duckdb") is not None


@dataclass
class AnalyzeResult:
    """The verdict (validated by the writer) and the exit status it means."""

    verdict: dict[str, Any]
    exit_status: int
    read: ShadowRead
    cases: int = 0


def analyze_logs(
    paths: Sequence[Path],
    *,
    route: str | None = None,
    config_path: Path | None = None,
    engine: Engine = "auto",
) -> AnalyzeResult:
    """Judge the logs' pairs; ``AnalyzeRefused`` for what cannot be one comparison."""
    from pytest_modelgate import __version__
    from pytest_modelgate.config.settings import GateLimits, load_config
    from pytest_modelgate.judge.decide import aggregated_verdict
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
    read = read_logs(paths, route=route, engine=engine)
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
    table = read.table
    if table is None or not len(table) or read.route is None or read.stable is None:
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
        verdict["shadow"] = _section(paths, read, None)
        return AnalyzeResult(verdict, EXIT_ERROR, read)
    cases = group_by_case(table, read.route, read.stable)
    read.table = None  # consumed by the grouping: its columns are reordered or let go
    verdict, exit_status = aggregated_verdict(
        cases.aggregates,
        limits=limits,
        started_at=started_at,
        common=common,
        timing=cases.timing,
        cases_changed=cases.cases_changed,
    )
    if read.skipped:
        verdict["reasons"].append(
            f"{read.skipped} shadow log line(s) skipped (corrupt, torn or incomplete): "
            + "; ".join(read.problems)
        )
    verdict["shadow"] = _section(paths, read, cases)
    return AnalyzeResult(verdict, exit_status, read, cases.cases)


def _section(paths: Sequence[Path], read: ShadowRead, cases: ShadowCases | None) -> dict[str, Any]:
    return {
        "logs": [str(p) for p in paths],
        "route": read.route,
        "engine": read.engine,
        "lines": read.lines,
        "pairs": read.pairs_seen,
        "cases": cases.cases if cases is not None else 0,
        "other_routes": read.other_routes,
        "skipped_lines": read.skipped,
        "skipped_examples": list(read.problems),
        "whole_log": cases.whole_log if cases is not None else {},
    }
