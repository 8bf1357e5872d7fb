"""Hook specifications other plugins (or a project's conftest.py) can implement.

Registered in ``pytest_addhooks``. Each hook is namespaced ``pytest_modelgate_*``; the README's
"Extending" section lists them with an example each.

Where each runs: ``pytest_modelgate_call_recorded`` in the process that runs the test (an xdist
worker under ``-n``), ``pytest_modelgate_metrics`` in every process that collects (the workers
under ``-n``: the controller gets the definitions from them), ``pytest_modelgate_judge`` and
``pytest_modelgate_verdict`` on the controller only. A hook that
raises never crashes the run: the verdict is ``error`` (and the exit status non-zero).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_modelgate.calls.records import CallRecord
    from pytest_modelgate.judge.metrics import CustomMetric
    from pytest_modelgate.judge.model import Judge


@pytest.hookspec(firstresult=True)
def pytest_modelgate_judge(config: pytest.Config) -> Judge | None:
    """Return the judge that decides the verdict, or None to use the built-in one.

    The judge receives every test record of both arms and returns a ``Judgement``; see
    ``pytest_modelgate.judge.Judge``. A judge returned here replaces the built-in one entirely,
    so metrics from ``pytest_modelgate_metrics`` are compared only if it compares them.
    Example, in ``conftest.py``::

        from pytest_modelgate.judge import FixedLimitJudge
        from pytest_modelgate.config.settings import GateLimits

        def pytest_modelgate_judge(config):
            # A stricter cost limit for this repository only.
            return FixedLimitJudge(GateLimits(cost_per_call_max_ratio=1.05))
    """


def pytest_modelgate_verdict(config: pytest.Config, verdict: dict[str, Any]) -> None:
    """Inspect or amend the verdict just before it is validated and written.

    Called on the controller only, once per run, with the verdict as a JSON-compatible dict
    (the format in ``docs/verdict.md``). Changes must keep it valid against the shipped schema;
    a hook that breaks it turns the verdict into ``error``. A hook may make the verdict stricter
    (``pass`` -> ``inconclusive`` -> ``fail`` -> ``error``; the exit status, ``exit_status`` and
    the rollout follow), never more lenient, and may not change ``kind``, ``complete``,
    ``run_id``, ``stable``, ``candidate``, ``mode`` or ``provenance``: either gives verdict
    ``error``. A hook that raises gives verdict ``error`` too. Example::

        import json, os

        def pytest_modelgate_verdict(config, verdict):
            # Attach the commit being gated, for the deploy step.
            verdict["reasons"].append(f"commit {os.environ.get('GITHUB_SHA', 'local')}")
            # Publish a copy for a dashboard (the verdict file itself is written after this).
            with open("gate-dashboard.json", "w") as out:
                json.dump({"verdict": verdict["verdict"], "run_id": verdict["run_id"]}, out)
            # Tighten: this repository ships nothing that is not a clean pass.
            if verdict["verdict"] == "inconclusive":
                verdict["verdict"] = "fail"
                verdict["reasons"].append("inconclusive is not enough for this repository")
    """


def pytest_modelgate_call_recorded(record: CallRecord, config: pytest.Config) -> None:
    """Called once per recorded HTTP attempt, in the process that ran the test.

    ``record`` is the frozen ``calls.records.CallRecord`` of the attempt (a retry is
    an attempt of its own; ``record.ok`` tells success), with the values of the plugins' metrics
    in ``record.extra``. It is called as the attempt finishes, in the test process (on the
    xdist worker under ``-n``, never on the controller), in replay as in live runs. Its texts are
    the gate's: error messages are scrubbed of keys, and the record holds no key or header
    (``violations`` quote the reply, as the test's failure does). The return value is
    ignored. The hook runs on the test's own thread, inside the HTTP call: keep it cheap (a run
    that implements no such hook does not call it at all).

    A hook that raises fails the test with its message and makes the verdict ``error`` (the
    data of that call is incomplete), never a crash of the run. Example, in ``conftest.py``::

        import json

        def pytest_modelgate_call_recorded(record, config):
            # A line per attempt, for the team's cost dashboard.
            with open("calls.jsonl", "a") as out:
                out.write(json.dumps({"test": record.test_id, "arm": record.arm,
                                      "model": record.model, "cost_usd": record.cost_usd,
                                      "latency_ms": record.latency_ms}) + "\\n")
    """


def pytest_modelgate_metrics(config: pytest.Config) -> list[CustomMetric] | None:
    """Return metrics of your own for the built-in judge to compare, like the built-in ones.

    Each is a ``pytest_modelgate.judge.metrics.CustomMetric``: a ``name`` (a lowercase identifier no
    built-in metric uses), a ``kind`` (``rate``, ``mean`` or ``ratio``), an ``extract`` function
    of a ``MeasuredCall`` (``.record``, the reply's ``.text``, the ``.request`` body) and a
    ``margin`` (None: reported, not gated; ``gate: metrics: {NAME: MARGIN}`` in modelgate.yaml
    overrides it). Results of every implementation are joined. ``extract`` runs in the test
    process on every successful attempt; the values travel on the reports (the function never
    leaves the process), and the judge compares them overall, per workflow and per language,
    with the verdict listing each under ``metrics`` by its name. Called once after collection
    in each process that collects (each xdist worker; the controller judges with the
    definitions the workers send, so every worker must define the same metrics). A
    definition that is wrong (a built-in name, a duplicate, a bad margin) is a usage error,
    and an ``extract`` that raises or returns a wrong type fails its test and makes the
    verdict ``error``. Example, in ``conftest.py``::

        from pytest_modelgate.judge.metrics import CustomMetric

        def pytest_modelgate_metrics(config):
            return [
                CustomMetric(
                    name="polite",
                    label="politeness",
                    kind="rate",  # extract returns True/False per reply
                    extract=lambda call: "please" in call.text.lower(),
                    margin=0.05,  # the candidate may be 5 points less polite
                ),
                CustomMetric(
                    name="reply_chars",
                    kind="ratio",  # lower is better; candidate / stable per call
                    higher_is_better=False,
                    extract=lambda call: len(call.text),
                    margin=1.5,
                ),
            ]
    """
