"""The ``modelgate`` script: simulator, model catalog, and show, check or report a verdict."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_modelgate import __version__

# Exit statuses of `modelgate show`, matching the pytest run that wrote the verdict.
_SHOW_EXIT = {"pass": 0, "inconclusive": 0, "fail": 1, "error": 3}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelgate",
        description="pytest-modelgate tools. The gate itself runs inside pytest: "
        "pytest --stable-model A --candidate-model B",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulate = commands.add_parser(
        "simulate",
        help="serve simulated OpenAI-compatible models on 127.0.0.1",
        description="Serve the chat-completions protocol (JSON and SSE) for the models of a "
        "scenario file, on 127.0.0.1, until interrupted.",
    )
    simulate.add_argument("--port", type=int, default=8900, help="port (0 = any free port)")
    simulate.add_argument(
        "--scenario", type=Path, required=True, metavar="FILE", help="scenario YAML file"
    )

    models = commands.add_parser("models", help="list the built-in model catalog")
    models.add_argument("--provider", default=None, help="only this provider")

    show = commands.add_parser(
        "show",
        help="print a verdict file as a table; exit 0 for pass/inconclusive, 1 fail, 3 error",
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
        description="Decide whether a verdict file approves a deployment, in one line. Exit 0 "
        "go (a complete, schema-valid gate verdict `pass` meeting every --expect-*); 1 no-go "
        "(fail, error, inconclusive, a smoke run, another model or commit, too old); 2 bad "
        "arguments; 3 no verdict to judge (missing, unreadable, invalid, or incomplete: the run "
        "has not finished or was killed).",
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

    report = commands.add_parser(
        "report",
        help="write a verdict as Markdown (step summary, PR comment) and/or self-contained HTML",
        description="Write the report of a verdict: Markdown for $GITHUB_STEP_SUMMARY or a "
        "pull-request comment, kept under --max-chars by cutting the case lists first (never the "
        "verdict line or the regressions), and/or one self-contained HTML page with inline SVG "
        "charts that loads nothing from the network. The per-case view and the latency chart "
        "come from the records file next to the verdict, when it is there. Exit 0 written; 2 bad "
        "arguments or an output that cannot be written; 3 the verdict is missing, unreadable or "
        "invalid.",
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
    return parser


def _max_chars(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1000:
        raise argparse.ArgumentTypeError(f"must be at least 1000, got {number}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelgate`` console script."""
    args = _build_parser().parse_args(argv)
    if args.command == "simulate":
        from pytest_modelgate.simulator import main_simulate

        return main_simulate(args.port, args.scenario)
    if args.command == "models":
        return _models(args.provider)
    if args.command == "check":
        return _check(args)
    if args.command == "report":
        return _report(args)
    if args.verdict is None:
        from pytest_modelgate.inifile import ini_verdict_path

        return _show(ini_verdict_path(Path.cwd()).path)
    return _show(args.verdict)


def _check(args: argparse.Namespace) -> int:
    from pytest_modelgate.check import (
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
                from pytest_modelgate.provenance import head_commit

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


def _report(args: argparse.Namespace) -> int:
    from pytest_modelgate.check import VerdictFileError, load_verdict_file
    from pytest_modelgate.reports import render_html, render_markdown

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


def _models(provider: str | None) -> int:
    from tabulate import tabulate

    from pytest_modelgate.catalog import load_catalog

    catalog = load_catalog()
    rows = []
    for name in sorted(catalog.names(), key=str.lower):
        model = catalog.resolve(name)
        if provider and model.provider != provider:
            continue
        price = model.price
        rows.append(
            [
                name,
                model.provider or "-",
                model.api_key_env or "-",
                "-" if price is None else f"{price.input:g}",
                "-" if price is None or price.cached_input is None else f"{price.cached_input:g}",
                "-" if price is None else f"{price.output:g}",
                "-" if price is None else (price.as_of or "-"),
            ]
        )
    if not rows:
        print(f"modelgate: no models for provider {provider!r}", file=sys.stderr)
        return 2
    headers = ["model", "provider", "key variable", "in $/1M", "cached $/1M", "out $/1M", "as of"]
    print(tabulate(rows, headers=headers, tablefmt="simple"))
    return 0


def _show(path: Path) -> int:
    from pytest_modelgate.report import summary_lines
    from pytest_modelgate.verdict import VerdictValidationError, validate_verdict

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
