"""The ``modelgate`` script: simulator, model catalog, and show, check or report a verdict."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_modelgate import __version__

# Exit statuses of `modelgate show`, matching the pytest run that wrote the verdict.
_SHOW_EXIT = {"pass": 0, "inconclusive": 0, "fail": 1, "error": 3}

# What each subcommand's exit status means: printed at the end of its --help and listed in the
# README's "The modelgate command" table (tests/unit/test_cli_help.py holds the three together).
# 2 is also argparse's status for bad arguments, so every subcommand uses it for usage errors.
EXIT_STATUSES: dict[str, tuple[tuple[int, str], ...]] = {
    "check": (
        (0, "go: a complete, schema-valid gate verdict `pass` meeting every --expect-*"),
        (1, "no-go: fail, error, inconclusive, a smoke run, another model or commit, too old"),
        (2, "bad arguments"),
        (3, "no verdict to judge: missing, unreadable, invalid, or incomplete"),
    ),
    "show": (
        (0, "the verdict is pass or inconclusive"),
        (1, "the verdict is fail"),
        (2, "bad arguments"),
        (3, "the verdict is error, or the file is missing, unreadable or invalid"),
    ),
    "report": (
        (0, "the report(s) were written"),
        (2, "bad arguments, or an output that cannot be written"),
        (3, "the verdict is missing, unreadable or invalid"),
    ),
    "merge": (
        (0, "the merged verdict is pass or inconclusive"),
        (1, "the merged verdict is fail"),
        (2, "bad arguments"),
        (
            3,
            "error: the parts were refused (mismatch, duplicate case, unreadable) or one was "
            "incomplete",
        ),
    ),
    "models": (
        (0, "the catalog was listed"),
        (2, "bad arguments, or no model for --provider"),
    ),
    "rollout": (
        (0, "the plan's first step was applied to the route (or printed, with --dry-run)"),
        (1, "refused as `modelgate check` refuses, another stable model, or no plan"),
        (2, "bad arguments, or no such route or config file"),
        (
            3,
            "no verdict to apply (missing, unreadable, invalid, incomplete), or the new file "
            "would be invalid",
        ),
    ),
    "analyze": (
        (0, "the shadow verdict is pass or inconclusive"),
        (1, "the shadow verdict is fail"),
        (2, "bad arguments, or an invalid config file"),
        (
            3,
            "error: no usable pair, the logs mix routes or model pairs, a log is missing, or the "
            "verdict cannot be written",
        ),
    ),
    "route": (
        (0, "done (status: no route rolled back or killed)"),
        (1, "status: a route is rolled back or killed"),
        (2, "bad arguments, no such route, or an invalid config file"),
        (3, "the state store cannot be reached, or the config shares no state (memory)"),
    ),
    "simulate": (
        (0, "stopped by SIGINT or SIGTERM"),
        (1, "the port cannot be bound"),
        (2, "bad arguments, or an invalid scenario file"),
    ),
}
_EXIT_HEADING = "exit status:"


def _exit_epilog(command: str) -> str:
    """The ``exit status:`` block at the end of ``modelgate COMMAND --help``."""
    return "\n".join(
        [_EXIT_HEADING, *(f"  {code}  {meaning}" for code, meaning in EXIT_STATUSES[command])]
    )


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions as usual; keeps an ``exit status:`` epilog's lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(_EXIT_HEADING):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelgate",
        description="pytest-modelgate tools. The gate itself runs inside pytest: "
        "pytest --stable-model A --candidate-model B",
        epilog="Each command's exit statuses are listed at the end of `modelgate COMMAND "
        "--help`; 2 always means bad arguments.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulate = commands.add_parser(
        "simulate",
        help="serve simulated OpenAI-compatible models on 127.0.0.1",
        description="Serve the chat-completions protocol (JSON and SSE) for the models of a "
        "scenario file, on 127.0.0.1, until interrupted.",
        epilog=_exit_epilog("simulate"),
        formatter_class=_HelpFormatter,
    )
    simulate.add_argument("--port", type=int, default=8900, help="port (0 = any free port)")
    simulate.add_argument(
        "--scenario", type=Path, required=True, metavar="FILE", help="scenario YAML file"
    )

    models = commands.add_parser(
        "models",
        help="list the built-in model catalog with prices, their sources and dates",
        description="List the models the built-in catalog knows: provider, API key variable, "
        "list prices in USD per 1M tokens (input, cached input, output), where each price was "
        "read and when (source, as of). Models of modelgate.yaml are not listed.",
        epilog=_exit_epilog("models"),
        formatter_class=_HelpFormatter,
    )
    models.add_argument("--provider", default=None, help="only this provider")
    models.add_argument(
        "--json", action="store_true", help="print a JSON array (one object per model)"
    )

    show = commands.add_parser(
        "show",
        help="print a verdict file as a table; exit 0 for pass/inconclusive, 1 fail, 3 error",
        description="Print a verdict file as the run printed it: the comparison table, the "
        "reasons, the rollout plan and the verdict line.",
        epilog=_exit_epilog("show"),
        formatter_class=_HelpFormatter,
    )
    show.add_argument(
        "verdict",
        type=Path,
        nargs="?",
        default=None,
        help="the verdict file (default: the ini option modelgate_verdict of the pytest "
        "configuration here, as pytest finds it, else modelgate-verdict.json)",
    )

    check = commands.add_parser(
        "check",
        help="the deploy step's go/no-go: exit 0 only for a complete gate `pass`",
        description="Decide whether a verdict file approves a deployment, in one line (stdout "
        "for go, stderr otherwise). An incomplete verdict is one whose run has not finished or "
        "was killed.",
        epilog=_exit_epilog("check"),
        formatter_class=_HelpFormatter,
    )
    check.add_argument("verdict", type=Path, metavar="VERDICT", help="the verdict file")
    check.add_argument(
        "--allow-inconclusive",
        action="store_true",
        help="also go on `inconclusive` (the plan then starts with a shadow phase)",
    )
    check.add_argument("--expect-candidate", metavar="NAME", help="the candidate model to deploy")
    check.add_argument("--expect-stable", metavar="NAME", help="the stable model it replaces")
    check.add_argument(
        "--expect-commit",
        metavar="SHA",
        help="the commit being deployed (7+ hex digits, or HEAD: `git rev-parse HEAD` here); a "
        "verdict of another commit, or of a dirty tree, is refused",
    )
    check.add_argument(
        "--max-age",
        metavar="AGE",
        help="refuse a verdict that finished longer ago than AGE: SECONDS, or 30m, 2h, 1d",
    )

    merge = commands.add_parser(
        "merge",
        help="judge the records parts of a sharded run as one run and write its verdict",
        description="Judge the union of the records parts that shards wrote with pytest "
        "--modelgate-records PATH, exactly as one unsharded run would be judged (never by "
        "combining the shards' verdicts or p-values), and write the verdict and its records "
        "file next to it. A directory stands for every *.jsonl file in it. Refused (an `error` "
        "verdict, exit 3, one line naming the parts): parts of different stable/candidate "
        "models, configurations, commits, dirty states, plugin versions, modes, repeats or "
        "--modelgate-strict; a case in two parts; a part that is unreadable or no records "
        "part; no parts, or not --expect-parts of them. A part whose run was incomplete "
        "(interrupted, crashed worker, collection errors, killed) gives verdict `error` naming "
        "it.",
        epilog=_exit_epilog("merge"),
        formatter_class=_HelpFormatter,
    )
    merge.add_argument(
        "parts", type=Path, nargs="+", metavar="PART", help="records parts or directories of them"
    )
    merge.add_argument(
        "--verdict", type=Path, required=True, metavar="OUT", help="where to write the verdict"
    )
    merge.add_argument(
        "--expect-parts",
        type=_positive,
        metavar="N",
        help="refuse unless exactly N parts are given (a shard that died uploads nothing)",
    )

    report = commands.add_parser(
        "report",
        help="write a verdict as Markdown (step summary, PR comment) and/or self-contained HTML",
        description="Write the report of a verdict: Markdown for $GITHUB_STEP_SUMMARY or a "
        "pull-request comment, kept under --max-chars by cutting the case lists first (never the "
        "verdict line or the regressions), and/or one self-contained HTML page with inline SVG "
        "charts that loads nothing from the network. The per-case view and the latency chart "
        "come from the records file next to the verdict, when it is there.",
        epilog=_exit_epilog("report"),
        formatter_class=_HelpFormatter,
    )
    report.add_argument("verdict", type=Path, metavar="VERDICT", help="the verdict file")
    report.add_argument("--markdown", type=Path, metavar="OUT.md", help="write Markdown here")
    report.add_argument("--html", type=Path, metavar="OUT.html", help="write HTML here")
    report.add_argument(
        "--max-chars",
        type=_max_chars,
        default=65_000,
        metavar="N",
        help="longest Markdown report, in characters, at least 1000 (default 65000: a GitHub "
        "comment body holds 65536)",
    )
    rollout = commands.add_parser(
        "rollout",
        help="apply a verdict's rollout plan to a route of modelgate.yaml and print the diff",
        description="Set the route's candidate, first canary (or shadow) step and rollback "
        "triggers from a verdict, after the refusals of `modelgate check` (and a verdict "
        "against another stable model than the route's). The file is validated before it is "
        "replaced; the route's changed fields are edited in place, so comments and the rest of "
        "the file are kept.",
        epilog=_exit_epilog("rollout"),
        formatter_class=_HelpFormatter,
    )
    rollout.add_argument("verdict", type=Path, metavar="VERDICT", help="the verdict file")
    rollout.add_argument("--route", required=True, metavar="NAME", help="the route to change")
    rollout.add_argument(
        "--config",
        type=Path,
        default=Path("modelgate.yaml"),
        help="the file (default: %(default)s)",
    )
    rollout.add_argument(
        "--allow-inconclusive",
        action="store_true",
        help="also apply an inconclusive verdict (its plan is a shadow phase)",
    )
    rollout.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    _add_analyze(commands)
    _add_route(commands)
    return parser


def _add_analyze(commands: Any) -> None:
    """``modelgate analyze``'s parser."""
    analyze = commands.add_parser(
        "analyze",
        help="judge a gateway's shadow log with the gate's judge and write a shadow verdict",
        description="Each line of a shadow log is one production request answered by stable and "
        "mirrored to the candidate: a paired case. The pairs of one route are judged by the same "
        "paired judge and margins as the gate, and the verdict (kind shadow, the gate's schema) "
        "works with `modelgate check` and `modelgate rollout`. Corrupt or torn lines are skipped "
        "and counted; a log mixing routes (without --route) or model pairs is refused.",
        epilog=_exit_epilog("analyze"),
        formatter_class=_HelpFormatter,
    )
    analyze.add_argument("logs", nargs="+", type=Path, metavar="SHADOW.jsonl")
    analyze.add_argument(
        "--verdict",
        type=Path,
        default=Path("modelgate-shadow-verdict.json"),
        help="where to write the verdict (default: %(default)s)",
    )
    analyze.add_argument("--route", metavar="NAME", help="the route whose pairs to judge")
    analyze.add_argument(
        "--config",
        type=Path,
        help="modelgate.yaml: its gate: margins, and a check that the route's stable matches",
    )
    analyze.add_argument(
        "--engine",
        choices=("auto", "python", "duckdb"),
        default="auto",
        help="how to read the logs: duckdb (the duckdb extra) or python; auto: duckdb for logs "
        "over 20 MB when installed",
    )


def _add_route(commands: Any) -> None:
    """``modelgate route``'s parser."""
    route = commands.add_parser(
        "route",
        help="a route's shared state: status, reset a rollback, kill switch on or off",
        description="Read or move the state every gateway process and replica shares through "
        "the state: store of modelgate.yaml (file or redis): the canary monitor's rollback, "
        "step and trigger figures, the counters, and a kill switch they all obey on their "
        "next call. reset ends a rollback (the canary starts again at its first step).",
        epilog=_exit_epilog("route"),
        formatter_class=_HelpFormatter,
    )
    route.add_argument("action", choices=("status", "reset", "kill", "unkill"))
    route.add_argument(
        "names", nargs="*", metavar="NAME", help="the routes (status: default every route)"
    )
    route.add_argument(
        "--config",
        type=Path,
        default=Path("modelgate.yaml"),
        help="the file (default: %(default)s)",
    )
    route.add_argument("--json", action="store_true", help="status as JSON")


def _rollout(args: argparse.Namespace) -> int:
    from pytest_modelgate.gateway.rollout import RolloutRefused, apply_rollout

    try:
        apply_rollout(
            args.verdict,
            args.route,
            args.config,
            allow_inconclusive=args.allow_inconclusive,
            write=not args.dry_run,
        )
    except RolloutRefused as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from pytest_modelgate.errors import ConfigError
    from pytest_modelgate.verdict.model import discard_verdict, write_verdict_atomic
    from pytest_modelgate.verdict.shadow import AnalyzeRefused, analyze_logs

    _return_freed_memory()
    try:
        result = analyze_logs(
            args.logs,
            route=args.route,
            config_path=args.config,
            engine=args.engine,
        )
    except ConfigError as exc:
        print(f"modelgate analyze: {exc}", file=sys.stderr)
        return 2
    except AnalyzeRefused as exc:
        print(f"modelgate analyze: refused: {exc}", file=sys.stderr)
        # No earlier verdict at OUT may pass for this analysis.
        _done, happened = discard_verdict(args.verdict)
        print(f"modelgate analyze: {happened}", file=sys.stderr)
        return 3
    read = result.read
    for problem in read.problems:
        print(f"modelgate analyze: skipped {problem}", file=sys.stderr)
    try:
        write_verdict_atomic(args.verdict, result.verdict)
    except (OSError, ValueError) as exc:
        _done, happened = discard_verdict(args.verdict)
        print(f"modelgate analyze: cannot write {args.verdict}: {exc}; {happened}", file=sys.stderr)
        return 3
    print(
        f"modelgate analyze: {read.lines} line(s), {read.pairs_seen} pair(s) of route "
        f"{read.route} ({read.stable} vs {read.candidate}) in {result.cases} case(s), "
        f"{read.skipped} skipped, "
        f"{read.other_routes} of other routes ({read.engine}): verdict "
        f"{result.verdict['verdict']} written to {args.verdict}"
    )
    return result.exit_status


def _return_freed_memory() -> None:
    """Have glibc give large freed blocks back to the system at once (``modelgate analyze``).

    glibc raises its mmap threshold whenever a block it mapped is freed, up to 32 MiB, and then
    serves blocks below it from the heap, which is seldom returned: a million pairs' columns,
    freed one by one as they are aggregated, stayed resident (``bench/analyze_scale.py``: +140
    MB). A fixed threshold keeps every column mapped, so freeing it returns it. Only in this
    command's own process, and only where glibc is the C library.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if sys.platform != "linux" or name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        return  # not glibc (musl has no mallopt): nothing to tune


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def _max_chars(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1000:
        raise argparse.ArgumentTypeError(f"must be at least 1000, got {number}")
    return number


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelgate`` console script."""
    args = _build_parser().parse_args(argv)
    if args.command == "simulate":
        from pytest_modelgate.simulator import main_simulate

        return main_simulate(args.port, args.scenario)
    if args.command == "models":
        return _models(args.provider, as_json=args.json)
    if args.command == "check":
        return _check(args)
    if args.command == "report":
        return _report(args)
    if args.command == "merge":
        return _merge(args)
    if args.command == "rollout":
        return _rollout(args)
    if args.command == "analyze":
        return _analyze(args)
    if args.command == "route":
        from pytest_modelgate.gateway.routecli import route_command

        return route_command(args.action, args.names, args.config, as_json=args.json)
    if args.verdict is None:
        from pytest_modelgate.config.inifile import ini_verdict_path

        return _show(ini_verdict_path(Path.cwd()).path)
    return _show(args.verdict)


def _check(args: argparse.Namespace) -> int:
    from pytest_modelgate.verdict.check import (
        EXIT_USAGE,
        PREFIX,
        Expectations,
        check_file,
        parse_age,
        parse_commit,
    )

    commit: str | None = None
    max_age: float | None = None
    try:
        if args.expect_commit is not None:
            if args.expect_commit.strip().upper() == "HEAD":
                from pytest_modelgate.verdict.provenance import head_commit

                commit = head_commit(Path.cwd())
                if commit is None:
                    raise ValueError(
                        f"--expect-commit HEAD: {Path.cwd()} is not in a git repository "
                        "(or git is not installed); pass the commit id"
                    )
            else:
                commit = parse_commit(args.expect_commit)
        if args.max_age is not None:
            max_age = parse_age(args.max_age)
        for flag, value in (
            ("--expect-candidate", args.expect_candidate),
            ("--expect-stable", args.expect_stable),
        ):
            if value is not None and not value.strip():
                raise ValueError(f"{flag} is empty (an unset CI variable?)")
    except ValueError as exc:
        print(f"{PREFIX}usage: {exc}", file=sys.stderr)
        return EXIT_USAGE
    expectations = Expectations(
        allow_inconclusive=args.allow_inconclusive,
        candidate=None if args.expect_candidate is None else args.expect_candidate.strip(),
        stable=None if args.expect_stable is None else args.expect_stable.strip(),
        commit=commit,
        max_age_s=max_age,
    )
    decision = check_file(args.verdict, expectations)
    print(decision.line, file=sys.stdout if decision.go else sys.stderr)
    return decision.exit_code


def _merge(args: argparse.Namespace) -> int:
    from pytest_modelgate.verdict.merge import (
        MergeRefused,
        Part,
        expand_parts,
        merge_parts,
        read_part,
        refusal_verdict,
        write_result,
    )
    from pytest_modelgate.verdict.model import discard_verdict, write_verdict_atomic

    parts: list[Part] = []
    try:
        for path in expand_parts(args.parts):
            parts.append(read_part(path))
        result = merge_parts(parts, expect_parts=args.expect_parts)
    except MergeRefused as exc:
        print(f"modelgate merge: refused: {exc}", file=sys.stderr)
        # An `error` verdict at OUT: no earlier verdict there may pass for this merge's.
        try:
            write_verdict_atomic(args.verdict, refusal_verdict(str(exc), parts))
        except (OSError, ValueError) as error:
            _done, happened = discard_verdict(args.verdict)
            print(f"modelgate merge: cannot write {args.verdict}: {error}; {happened}")
        return 3
    try:
        write_result(args.verdict, result, parts)
    except (OSError, ValueError) as exc:
        _done, happened = discard_verdict(args.verdict)
        print(f"modelgate merge: cannot write {args.verdict}: {exc}; {happened}", file=sys.stderr)
        return 3
    print(
        f"modelgate merge: {len(parts)} part(s), {len(result.records)} record(s): verdict "
        f"{result.verdict['verdict']} written to {args.verdict}"
    )
    return result.exit_status


def _report(args: argparse.Namespace) -> int:
    from pytest_modelgate.verdict.check import VerdictFileError, load_verdict_file
    from pytest_modelgate.verdict.reports import render_html, render_markdown

    if args.markdown is None and args.html is None:
        print(
            "modelgate report: usage: give --markdown OUT.md, --html OUT.html or both",
            file=sys.stderr,
        )
        return 2
    try:
        verdict = load_verdict_file(args.verdict)
    except VerdictFileError as exc:
        print(f"modelgate report: {exc}", file=sys.stderr)
        return 3
    outputs = []
    if args.markdown is not None:
        outputs.append(
            (args.markdown, render_markdown(verdict, args.verdict, max_chars=args.max_chars))
        )
    if args.html is not None:
        outputs.append((args.html, render_html(verdict, args.verdict)))
    for path, text in outputs:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"modelgate report: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"modelgate report: wrote {path} ({len(text):,} characters)")
    return 0


def _models(provider: str | None, *, as_json: bool = False) -> int:
    from tabulate import tabulate

    from pytest_modelgate.calls.catalog import load_catalog

    catalog = load_catalog()
    rows = []
    entries = []
    for name in sorted(catalog.names(), key=str.lower):
        model = catalog.resolve(name)
        if provider and model.provider != provider:
            continue
        price = model.price
        entries.append(
            {
                "model": name,
                "provider": model.provider,
                "api_key_env": model.api_key_env,
                "price": None if price is None else price.model_dump(mode="json"),
            }
        )
        rows.append(
            [
                name,
                model.provider or "-",
                model.api_key_env or "-",
                "-" if price is None else f"{price.input:g}",
                "-" if price is None or price.cached_input is None else f"{price.cached_input:g}",
                "-" if price is None else f"{price.output:g}",
                "-" if price is None else (price.as_of or "-"),
                "-" if price is None else (price.source or "-"),
            ]
        )
    if not rows:
        print(f"modelgate: no models for provider {provider!r}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    headers = [
        "model",
        "provider",
        "key variable",
        "in $/1M",
        "cached $/1M",
        "out $/1M",
        "as of",
        "source",
    ]
    print(tabulate(rows, headers=headers, tablefmt="simple"))
    return 0


def _show(path: Path) -> int:
    from pytest_modelgate.verdict.model import VerdictValidationError, validate_verdict
    from pytest_modelgate.verdict.reports.terminal import summary_lines

    # Every way a file can fail to be a verdict is one line and exit 3, never a traceback.
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        print(f"modelgate: no verdict file at {path}", file=sys.stderr)
        return 3
    except IsADirectoryError:
        print(f"modelgate: {path} is a directory, not a verdict file", file=sys.stderr)
        return 3
    except OSError as exc:
        print(f"modelgate: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 3
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise VerdictValidationError([f"$: expected a JSON object, got {type(data).__name__}"])
        validate_verdict(data)
    except UnicodeDecodeError as exc:
        print(f"modelgate: {path} is not UTF-8 text (byte {exc.start})", file=sys.stderr)
        return 3
    except (json.JSONDecodeError, VerdictValidationError) as exc:
        print(f"modelgate: {path} is not a valid verdict: {exc}", file=sys.stderr)
        return 3
    # Reading a verdict writes nothing: the summary's last line must not say it was written.
    for line in summary_lines(data, verdict_path=path, written=None):
        print(line)
    return _SHOW_EXIT.get(str(data.get("verdict")), 3)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
