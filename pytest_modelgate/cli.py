"""The ``modelgate`` console script: run the simulator, list the catalog, show a verdict."""

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
    show.add_argument("verdict", type=Path, nargs="?", default=Path("modelgate-verdict.json"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelgate`` console script."""
    args = _build_parser().parse_args(argv)
    if args.command == "simulate":
        from pytest_modelgate.simulator import main_simulate

        return main_simulate(args.port, args.scenario)
    if args.command == "models":
        return _models(args.provider)
    return _show(args.verdict)


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

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        validate_verdict(data)
    except FileNotFoundError:
        print(f"modelgate: no verdict file at {path}", file=sys.stderr)
        return 3
    except (json.JSONDecodeError, VerdictValidationError) as exc:
        print(f"modelgate: {path} is not a valid verdict: {exc}", file=sys.stderr)
        return 3
    for line in summary_lines(data, verdict_path=path):
        print(line)
    return _SHOW_EXIT.get(str(data.get("verdict")), 3)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
