"""The controller's side of a gated run: it collects the reports, decides in
``pytest_sessionfinish``, prints the summary and merges what xdist workers send.

Registered as plugin objects by ``plugin.pytest_configure`` only when the run gates.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_modelgate.session import GateSession
from pytest_modelgate.stash import METRICS_KEY, gate_of, on_worker
from pytest_modelgate.verdictfile import lock_failure, lock_verdict, read_git_state


class GateHooks:
    """Hooks that need the gate but get no config argument; registered at configure time.

    The gate itself may be built later (see pytest_configure): until then every hook but
    pytest_collectreport has nothing to do.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        # Collection errors seen before the gate was built; it takes them over when it is.
        self.pending_collection_errors: list[str] = []

    @property
    def gate(self) -> GateSession:
        gate = gate_of(self.config)
        assert gate is not None  # every caller checked gate_of() first
        return gate

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Remember modules that failed to collect: their cases never ran on either arm."""
        if not report.failed or on_worker(self.config):
            return
        gate = gate_of(self.config)
        errors = self.pending_collection_errors if gate is None else gate.collection_errors
        errors.append(report.nodeid or "<rootdir>")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """On the controller, fold each phase report into the session (once per phase)."""
        if gate_of(self.config) is None or self.gate.is_worker:
            return
        problem = getattr(report, "modelgate_problem", None)
        if problem is not None:
            self.gate.problems.append(problem)
        data = getattr(report, "modelgate", None)
        if data is None:
            return
        from pytest_modelgate.session import TestPhase

        try:
            self.gate.receive(TestPhase.from_json(data))
        except Exception as exc:
            self.gate.problems.append(f"{report.nodeid}: unreadable gate record: {exc!r}")
        # The session holds the phase now; pytest keeps every report until the end of the run.
        del report.modelgate

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Judge, write the verdict atomically and set the exit status (controller only)."""
        if gate_of(self.config) is None:
            return  # no test used `llm` and nothing asked for the gate: nothing to say
        if self.gate.is_worker:
            # Worker-level facts travel in workeroutput; per-test records ride on the reports.
            workeroutput: dict[str, Any] = self.config.workeroutput  # type: ignore[attr-defined]
            workeroutput["modelgate"] = {
                "used": self.gate.used,
                "config_errors": list(self.gate.config_errors),
                "cassettes_expected": sorted(self.gate.cassettes_expected),
                "cassette_roots": sorted(self.gate.cassette_roots),
                "full_selection": self.gate.full_selection,
                "gated_test_ids": sorted(self.gate.gated_test_ids),
                "tests_known": self.gate.tests_known,
                # The controller collects nothing: it judges the plugins' metrics from these.
                "custom_metrics": [m.definition() for m in self.config.stash.get(METRICS_KEY, ())],
            }
            return
        if self.config.option.collectonly:
            return
        if not self.gate.provisional_written and (
            self.gate.used or self.gate.config_errors or self.gate.candidate is not None
        ):
            # A run that wrote nothing at configure (a smoke run, no earlier verdict) locks the
            # path now, before it writes; if another run holds it, this one writes nothing.
            path = self.gate.settings.verdict_path
            try:
                lock = lock_verdict(self.config, path)
            except pytest.UsageError as exc:
                self.gate.lock_problem = str(exc)
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
                return
            if isinstance(lock, OSError):
                self.gate.lock_problem = f"modelgate: {lock_failure(path, lock)}"
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
                return
            if self.gate.git is None:
                self.gate.git = read_git_state(self.gate)
        from pytest_modelgate.judge.decide import finish

        self.gate.verdict_hooks = tuple(
            impl.plugin_name for impl in self.config.hook.pytest_modelgate_verdict.get_hookimpls()
        )
        self.gate.custom_metrics = tuple(m.name for m in self.config.stash.get(METRICS_KEY, ()))
        self.gate.custom_metric_labels = {
            m.name: m.label for m in self.config.stash.get(METRICS_KEY, ()) if m.label
        }
        # Missing recordings are one reason per model, however many tests lacked them.
        for reason in self.gate.missing_recording_reasons():
            if reason not in self.gate.problems:
                self.gate.problems.append(reason)
        outcome = finish(
            self.gate,
            pytest_status=int(exitstatus),
            stopped_early=bool(session.shouldstop or session.shouldfail),
            judge=lambda: (
                self.config.hook.pytest_modelgate_judge(config=self.config)
                or _judge_with_custom_metrics(self.config, self.gate)
            ),
            amend=lambda verdict: self.config.hook.pytest_modelgate_verdict(
                config=self.config, verdict=verdict
            ),
        )
        if outcome is not None:
            session.exitstatus = outcome
        if self.gate.settings.mode != "live" and self.gate.cassettes_played:
            complete = int(exitstatus) in (0, 1) and not (session.shouldstop or session.shouldfail)
            verdict = self.gate.verdict.get("verdict") if self.gate.verdict else None
            self.gate.inventory_lines = _recordings_inventory(
                self.gate,
                full=complete and self.gate.full_selection,
                judged=verdict not in (None, "error"),
                rootdir=self.config.rootpath,
            )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Print the comparison table, the verdict and where it was written."""
        if gate_of(self.config) is None:
            return
        if self.gate.lock_problem is not None:
            terminalreporter.section("modelgate")
            terminalreporter.write_line(f"{self.gate.lock_problem}; no verdict written")
            return
        if self.gate.verdict is None:
            return
        from pytest_modelgate.verdict.reports.terminal import summary_lines

        terminalreporter.section("modelgate")
        lines = summary_lines(
            self.gate.verdict,
            verdict_path=self.gate.settings.verdict_path,
            written=self.gate.verdict_written,
            # The terminal's width (COLUMNS when set), 100 when output is not a terminal.
            width=max(shutil.get_terminal_size((100, 24)).columns, 60),
        )
        for line in lines:
            terminalreporter.write_line(line)
        if os.environ.get("GITHUB_ACTIONS"):
            from pytest_modelgate.verdict.reports import github_lines

            # Annotations go to stdout at the start of a line, where the runner reads them.
            for line in github_lines(self.gate.verdict, self.gate.settings.verdict_path):
                terminalreporter.write_line(line)
        if self.gate.inventory_lines:
            terminalreporter.write_line("recordings:")
            for line in self.gate.inventory_lines:
                terminalreporter.write_line(f"  {line}")


def _judge_with_custom_metrics(config: pytest.Config, gate: GateSession) -> Any:
    """The built-in judge comparing the plugins' metrics too; None when there are none."""
    metrics = config.stash.get(METRICS_KEY, ())
    if not metrics:
        return None
    from pytest_modelgate.judge.decide import default_judge
    from pytest_modelgate.judge.paired import PairedJudge

    judge = default_judge(gate.settings.config.gate)
    return judge.with_metrics(metrics) if isinstance(judge, PairedJudge) else judge


def _recordings_inventory(
    gate: GateSession, *, full: bool, judged: bool, rootdir: Path
) -> list[str]:
    """Summarise recordings this run did not use; prune them when asked and the run allows it.

    A prune needs a full run (only it shows what is unused) that the gate judged (``judged``:
    the verdict is not ``error``, so the tests ran as they were meant to).
    """
    from pytest_modelgate.errors import ModelgateError
    from pytest_modelgate.recording.inventory import PlayedCassette, PruneScope, take_inventory
    from pytest_modelgate.recording.inventory import prune as prune_recordings

    mode = gate.settings.prune
    played = [
        PlayedCassette(
            path=str(c["path"]),
            interactions=int(c["interactions"]),
            played=frozenset(int(i) for i in c["played"]),
            complete=bool(c["complete"]),
        )
        for c in gate.cassettes_played
    ]
    # Only a full run can say a cassette is an orphan; otherwise judge just what was opened.
    expected = [str(p) for p in gate.cassettes_expected] if full else [c.path for c in played]
    roots = [Path(r) for r in gate.cassette_roots] if full else []
    # A plain prune never deletes another model's recordings or a larger repeat count's.
    scope = (
        PruneScope.everything()
        if mode == "all"
        else PruneScope(
            models=frozenset(name for _, name in gate.arms()), repeats=gate.settings.repeat
        )
    )
    try:
        inventory = take_inventory(played, expected=expected, roots=roots)
        lines = inventory.summary(scope, rootdir, can_prune=full)
        if mode == "dry-run":
            lines += inventory.dry_run_lines(scope, rootdir)
            lines.append("--modelgate-prune=dry-run: nothing was removed")
        elif mode != "off" and not inventory.within(scope).clean:
            if not full:
                lines.append(
                    "--modelgate-prune: nothing removed, only a full run (no -k/-m/paths, not "
                    "stopped early) shows which recordings are unused"
                )
            elif not judged:
                lines.append(
                    "--modelgate-prune: nothing removed, the verdict is error: recordings are "
                    "pruned only after a run the gate could judge"
                )
            else:
                lines += prune_recordings(inventory, scope).lines(rootdir)
    except ModelgateError as exc:
        lines = [f"could not take the inventory of recordings: {exc}"]
    return lines


class XdistController:
    """Hooks that exist only when pytest-xdist is installed, registered on the controller."""

    def __init__(self, gate: GateSession, config: pytest.Config) -> None:
        self.gate = gate
        self.config = config

    @pytest.hookimpl
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Tell the preflight lines once, from the first worker's collection, before any test.

        Every worker collects the same selection, and a cassette path follows from the node id
        (its module part, relative to the rootdir) and the arm fragment at its end.
        """
        if self.gate.preflight_told:
            return
        self.gate.preflight_told = True
        root = self.config.rootpath
        gated = [
            (root / test_id.split("::", 1)[0], test_id, param)
            for test_id in ids
            if (param := self.gate.arm_param_of(test_id)) is not None
        ]
        lines = self.gate.preflight_lines(gated)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            for line in lines:
                reporter.write_line(line)

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        """Merge the worker's facts; one that went down with an error leaves the run incomplete."""
        facts = getattr(node, "workeroutput", {}).get("modelgate")
        if facts:
            self.gate.used = self.gate.used or bool(facts.get("used"))
            for message in facts.get("config_errors", ()):
                if message not in self.gate.config_errors:
                    self.gate.config_errors.append(message)
            self.gate.cassettes_expected.update(facts.get("cassettes_expected", ()))
            self.gate.cassette_roots.update(facts.get("cassette_roots", ()))
            if not facts.get("full_selection", True):
                self.gate.full_selection = False
            # Every worker collects the whole selection: the union is the selection.
            self.gate.gated_test_ids.update(facts.get("gated_test_ids", ()))
            self.gate.tests_known = self.gate.tests_known or bool(facts.get("tests_known"))
            self._merge_custom_metrics(facts.get("custom_metrics") or [])
        if error is not None:
            gateway = getattr(node, "gateway", None)
            name = getattr(gateway, "id", None) or str(node)
            self.gate.problems.append(f"xdist worker {name} crashed: {error}")

    def _merge_custom_metrics(self, definitions: list[dict[str, Any]]) -> None:
        """Every worker asks the same hooks: the first that defined metrics gives them."""
        from pytest_modelgate.judge.metrics import CustomMetric

        if not definitions:
            return
        known = self.config.stash.get(METRICS_KEY, ())
        if not known:
            self.config.stash[METRICS_KEY] = tuple(
                CustomMetric.from_definition(d) for d in definitions
            )
        elif [m.definition() for m in known] != definitions:
            self.gate.problems.append(
                "xdist workers disagree on the metrics pytest_modelgate_metrics defines: "
                "the values they recorded cannot be compared"
            )
