"""Per-run state of the gate: settings, resolved models, the records that arrived, the verdict.

``plugin.py`` keeps one ``GateSession`` in ``config.stash`` and its hooks delegate here. This
module knows pytest's report objects only as plain data (``TestPhase``) so that it stays testable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pytest_modelgate import __version__

if TYPE_CHECKING:
    from pytest_modelgate.judge.allowances import Allowance
from pytest_modelgate.calls.endpoints import ResolvedModel
from pytest_modelgate.calls.records import (
    ARMS,
    Arm,
    Budgets,
    CallRecord,
    ModelIdentity,
    Outcome,
    TestRecord,
)
from pytest_modelgate.config.settings import (
    ModelgateConfig,
    api_key_for,
    require_api_key,
    resolve_model,
)

Mode = Literal["live", "replay", "record", "rerecord"]
MODES: tuple[str, ...] = ("live", "replay", "record", "rerecord")
PruneMode = Literal["off", "safe", "all", "dry-run"]
# Modes in which calls may reach the models (and so need API keys).
NETWORK_MODES: frozenset[str] = frozenset({"live", "record", "rerecord"})

# Exit statuses (pytest's own numbers where they fit; see README "Exit status").
EXIT_OK = 0
EXIT_FAIL = 1  # the verdict is fail (or a smoke run had failing tests)
EXIT_ERROR = 3  # the verdict is error: the gate could not decide


@dataclass(frozen=True, kw_only=True)
class GateSettings:
    """The gate's options after merging command line, ini file and ``modelgate.yaml``.

    Precedence, highest first: command-line option, ini option (pytest.ini / pyproject.toml),
    ``modelgate.yaml``, built-in default.
    """

    stable: str | None
    candidate: str | None
    mode: Mode
    repeat: int
    strict: bool
    verdict_path: Path
    config_path: Path | None
    config: ModelgateConfig
    # --modelgate-prune: off, safe (this run's models and repeats), all, or dry-run.
    prune: PruneMode = "off"
    # --modelgate-records: where this run (a shard) writes its self-describing records part for
    # `modelgate merge` (pytest_modelgate.verdict.merge); None: no part is written.
    records_part: Path | None = None
    # Margins widened for this run on purpose (--modelgate-allow, ini modelgate_allow), already
    # applied to ``config``; the verdict lists them.
    allowances: tuple[Allowance, ...] = ()

    @property
    def records_path(self) -> Path:
        """The JSON Lines file of test records written next to the verdict."""
        return self.verdict_path.with_name(f"{self.verdict_path.stem}.records.jsonl")


@dataclass(frozen=True, kw_only=True)
class ArmParam:
    """The parameter behind one ``llm`` instance: which arm, model and repeat it plays."""

    arm: Arm
    model: str
    repeat: int
    repeats: int

    @property
    def id(self) -> str:
        """The test-id fragment, e.g. ``stable-deepseek-chat`` or ``candidate-qwen-max-rep2``."""
        base = f"{self.arm}-{self.model}"
        return base if self.repeats == 1 else f"{base}-rep{self.repeat + 1}"


def case_id_for(test_id: str, arm_id: str) -> str:
    """The test id without the arm (and repeat) fragment: the key that pairs the arms."""
    if test_id.endswith(f"[{arm_id}]"):
        return test_id[: -len(arm_id) - 2]
    suffix = f"-{arm_id}]"
    if test_id.endswith(suffix):
        return test_id[: -len(suffix)] + "]"
    return test_id


@dataclass
class _ItemAccumulator:
    """What has arrived so far for one test item: reports come phase by phase."""

    test_id: str
    case_id: str
    workflow: str
    arm: Arm
    model: str
    repeat: int
    outcome: Outcome = "passed"
    duration_s: float = 0.0
    calls: list[CallRecord] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    message: str | None = None
    scores: list[tuple[str, float]] = field(default_factory=list)
    budgets: Budgets | None = None


@dataclass
class GateSession:
    """Everything the gate knows about this run; lives in ``config.stash``."""

    settings: GateSettings
    stable: ResolvedModel | None
    candidate: ResolvedModel | None
    is_worker: bool
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    items: dict[str, _ItemAccumulator] = field(default_factory=dict)
    # Reasons the run cannot be trusted (plugin errors, crashed workers); any makes it `error`.
    problems: list[str] = field(default_factory=list)
    # Usage errors found once the selection was known (no stable model, a missing key).
    config_errors: list[str] = field(default_factory=list)
    # Every cassette opening of the run, as shipped on reports (see plugin._note_opening).
    cassettes_played: list[dict[str, Any]] = field(default_factory=list)
    # Cassette files the collected gated tests would use, for every configured model; and the
    # cassettes/ folders they live in. Filled where collection happens (a worker under xdist).
    cassettes_expected: set[str] = field(default_factory=set)
    cassette_roots: set[str] = field(default_factory=set)
    # Whether every test of the suite was selected (no -k/-m, no path arguments).
    full_selection: bool = True
    inventory_lines: list[str] = field(default_factory=list)
    # Node ids that failed to collect (an import error in a test module, say).
    collection_errors: list[str] = field(default_factory=list)
    # Set once a test that uses `llm` was collected or reported: the gate has something to say.
    used: bool = False
    provisional_written: bool = False
    # The verdict decided at the end of the run, for the terminal summary, and whether it reached
    # the disk (the summary says "verdict written to" only then).
    verdict: dict[str, Any] | None = None
    verdict_written: bool = False
    # Provenance (see verdict/provenance.py): the directory cassette paths are relative to,
    # the repository state at the start (read once, on the controller), and the collected gated
    # test ids (from collection here, or from every worker's workeroutput under xdist).
    rootdir: Path | None = None
    git: dict[str, Any] | None = None
    gated_test_ids: set[str] = field(default_factory=set)
    tests_known: bool = False
    # Set when the end-of-run lock was held by another run: nothing was written.
    lock_problem: str | None = None
    # The last final cassettes_digest and the cassettes it is of (see provenance).
    _cassettes_digest: tuple[frozenset[Path], str] | None = field(default=None, repr=False)
    # For the records part (--modelgate-records): the command-line arguments, whether a
    # pytest_modelgate_judge hook chose the judge, and the plugins implementing
    # pytest_modelgate_verdict (a merge cannot replay either, so it refuses such parts).
    invocation_args: tuple[str, ...] = ()
    custom_judge: bool = False
    verdict_hooks: tuple[str, ...] = ()
    # Names of the metrics pytest_modelgate_metrics added: their definitions live in the plugins.
    custom_metrics: tuple[str, ...] = ()
    # Their labels (CustomMetric.label), stored in the verdict for `modelgate show` and reports.
    custom_metric_labels: dict[str, str] = field(default_factory=dict)
    # Replay's missing recordings: model -> {test id: its cassette file}. Told once per model
    # (missing_recording_reasons), not once per test.
    missing_recordings: dict[str, dict[str, str]] = field(default_factory=dict)
    # Whether the preflight line about missing recordings was printed (once, before the tests).
    preflight_told: bool = False

    def arms(self) -> list[tuple[Arm, str]]:
        """The arms this run plays, stable first, with the model name each uses."""
        arms: list[tuple[Arm, str]] = []
        if self.stable is not None:
            arms.append(("stable", self.stable.name))
        if self.candidate is not None:
            arms.append(("candidate", self.candidate.name))
        return arms

    def arm_params(self) -> list[ArmParam]:
        """One parameter per arm and repeat, in the order the items should run."""
        repeats = self.settings.repeat
        return [
            ArmParam(arm=arm, model=model, repeat=k, repeats=repeats)
            for k in range(repeats)
            for arm, model in self.arms()
        ]

    def model_for(self, arm: Arm) -> ResolvedModel:
        """The resolved model that plays ``arm``."""
        model = self.stable if arm == "stable" else self.candidate
        if model is None:  # pragma: no cover - params are only made for configured arms
            raise RuntimeError(f"no {arm} model configured")
        return model

    def identity(self, arm: Arm) -> ModelIdentity | None:
        """How the verdict names the model of ``arm``."""
        model = self.stable if arm == "stable" else self.candidate
        if model is None:
            return None
        return ModelIdentity(model=model.name, provider=model.provider, base_url=model.base_url)

    def receive(self, phase: TestPhase) -> None:
        """Merge one phase report (setup, call or teardown) of a gated test."""
        self.used = True
        item = self.items.get(phase.test_id)
        if item is None:
            item = _ItemAccumulator(
                test_id=phase.test_id,
                case_id=phase.case_id,
                workflow=phase.workflow,
                arm=phase.arm,
                model=phase.model,
                repeat=phase.repeat,
            )
            self.items[phase.test_id] = item
        for problem in phase.problems:
            if problem not in self.problems:
                self.problems.append(problem)
        for cassette in phase.missing_recordings:
            self.missing_recordings.setdefault(phase.model, {}).setdefault(phase.test_id, cassette)
        self.cassettes_played.extend(phase.cassettes)
        item.calls.extend(phase.calls)
        item.fallbacks.extend(phase.fallbacks)
        item.scores.extend(phase.scores)
        if phase.budgets is not None:
            item.budgets = phase.budgets
        item.duration_s += phase.duration_s
        item.outcome = _merge_outcome(item.outcome, phase.when, phase.outcome)
        if phase.outcome == "failed" and item.message is None:
            item.message = phase.message

    def test_records(self) -> tuple[list[TestRecord], list[TestRecord]]:
        """The finished records, split by arm, in the order they arrived."""
        by_arm: dict[str, list[TestRecord]] = {arm: [] for arm in ARMS}
        for item in self.items.values():
            calls = tuple(sorted(item.calls, key=lambda c: (c.call_index, c.attempt)))
            by_arm[item.arm].append(
                TestRecord(
                    test_id=item.test_id,
                    case_id=item.case_id,
                    workflow=item.workflow,
                    arm=item.arm,
                    model=item.model,
                    repeat=item.repeat,
                    outcome=item.outcome,
                    duration_s=item.duration_s,
                    calls=calls,
                    fallbacks=tuple(item.fallbacks),
                    message=item.message,
                    # The case's language: the prompt of its first call that has one.
                    language=next((c.prompt_language for c in calls if c.prompt_language), None),
                    scores=tuple(item.scores),
                    budgets=item.budgets,
                )
            )
        return by_arm["stable"], by_arm["candidate"]

    def missing_recording_reasons(self) -> list[str]:
        """One line per model whose recordings replay lacked: how many, and how to record them."""
        from pytest_modelgate.recording.use import RECORD_HINT

        lines: list[str] = []
        for name in sorted(self.missing_recordings):
            tests = self.missing_recordings[name]
            flag, with_key = self._record_advice(name)
            first = tests[min(tests)]
            count = len(tests)
            noun = "recording" if count == 1 else "recordings"
            lines.append(
                f"{count} {noun} missing for {name} (first: {first}); record them {with_key}: "
                f"pytest {flag} {name} {RECORD_HINT}"
            )
        return lines

    def arm_param_of(self, test_id: str) -> ArmParam | None:
        """The arm parameter a collected test id carries, or None for a test the gate does not run.

        The controller under xdist knows only the workers' node ids, and the arm is their last
        id fragment (see ``ArmParam.id``).
        """
        for param in self.arm_params():
            if case_id_for(test_id, param.id) != test_id:
                return param
        return None

    def preflight_lines(self, gated: Iterable[tuple[Path, str, ArmParam]]) -> list[str]:
        """Before the tests run in replay: one line per model whose cassette files do not exist.

        ``gated`` holds each gated test's module file, node id and arm parameter. Cassette paths
        follow from those alone, so a missing file is known before any test runs; a recording
        missing inside an existing file shows only when the test runs (and in the verdict).
        """
        if self.settings.mode != "replay" or self.config_errors:
            return []
        from pytest_modelgate.recording.cassettes import cassette_path
        from pytest_modelgate.recording.use import RECORD_HINT

        missing: dict[str, int] = {}
        for module, test_id, param in gated:
            path = cassette_path(
                module,
                case_id_for(test_id, param.id),
                param.model,
                repeat=param.repeat,
                repeats=param.repeats,
            )
            if not path.is_file():
                missing[param.model] = missing.get(param.model, 0) + 1
        lines: list[str] = []
        for name in sorted(missing):
            count = missing[name]
            noun = "recording" if count == 1 else "recordings"
            flag, with_key = self._record_advice(name)
            lines.append(
                f"modelgate: {count} {noun} missing for {name}; record them {with_key} and "
                f"`{RECORD_HINT}`: pytest {flag} {name} {RECORD_HINT}"
            )
        return lines

    def _record_advice(self, name: str) -> tuple[str, str]:
        """The option that names model ``name`` and "with KEY set", for advice to record it."""
        models = {m.name: m for m in (self.stable, self.candidate) if m is not None}
        model = models.get(name)
        flag = "--candidate-model" if self.candidate is model else "--stable-model"
        key = model.api_key_env if model is not None else None
        return flag, f"with {key} set" if key else "with the model's key variable set"

    def check_api_keys(self, environ: Mapping[str, str] = os.environ) -> None:
        """Raise MissingAPIKeyError for the first arm whose key variable is unset (live mode)."""
        for model in (self.stable, self.candidate):
            if model is not None:
                require_api_key(model, environ)

    def api_key(self, arm: Arm, environ: Mapping[str, str] = os.environ) -> str | None:
        """The key for ``arm``'s model, or None when it declares no key variable.

        Replay calls no model, so there a missing key is no error (None).
        """
        if self.settings.mode not in NETWORK_MODES:
            return api_key_for(self.model_for(arm), environ)
        return require_api_key(self.model_for(arm), environ)

    def secret_values(self, environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
        """The values of every key variable of both models that is set: never to be written."""
        values: list[str] = []
        for model in (self.stable, self.candidate):
            if model is None:
                continue
            for variable in model.key_variables():
                value = environ.get(variable, "").strip()
                if value and value not in values:
                    values.append(value)
        return tuple(values)

    @property
    def kind(self) -> str:
        """``gate`` when a candidate is compared, ``smoke`` for the stable model alone."""
        return "smoke" if self.candidate is None else "gate"

    def config_digest(self) -> str:
        """Digest of every resolved setting that affects judging (key *names*, never values)."""
        from pytest_modelgate.verdict.provenance import config_digest

        return config_digest(self.judged_settings())

    def provenance(self, *, final: bool) -> dict[str, Any]:
        """The verdict's ``provenance``; ``final`` adds what is known only at the end."""
        from pytest_modelgate.verdict.provenance import cassettes_digest, tests_digest

        data: dict[str, Any] = {
            "git": None if self.git is None else dict(self.git),
            "config_digest": self.config_digest(),
            "cassettes_digest": None,
            "tests_digest": None,
            "tests_collected": None,
        }
        if final and self.settings.mode != "live":
            root = self.rootdir or self.settings.verdict_path.parent
            paths = frozenset(Path(c["path"]) for c in self.cassettes_played)
            # The end of a run asks more than once (the verdict, the records part): the files
            # are read and hashed once.
            if self._cassettes_digest is None or self._cassettes_digest[0] != paths:
                self._cassettes_digest = (paths, cassettes_digest(paths, root))
            data["cassettes_digest"] = self._cassettes_digest[1]
        if final and self.tests_known:
            data["tests_digest"] = tests_digest(self.gated_test_ids)
            data["tests_collected"] = len(self.gated_test_ids)
        return data

    def cassette_lines(self) -> list[str] | None:
        """The cassettes this run played, as ``cassettes_digest`` lines; None in live mode."""
        from pytest_modelgate.verdict.provenance import cassette_lines

        if self.settings.mode == "live":
            return None
        root = self.rootdir or self.settings.verdict_path.parent
        paths = {Path(c["path"]) for c in self.cassettes_played}
        return sorted(cassette_lines(paths, root).values())

    def judged_settings(self) -> dict[str, Any]:
        """What ``config_digest`` digests: the resolved settings that affect judging."""
        from pytest_modelgate.judge.allowances import allowance_json

        settings = self.settings
        return {
            "config": settings.config.model_dump(mode="json"),
            "stable": None if self.stable is None else self.stable.model_dump(mode="json"),
            "candidate": None if self.candidate is None else self.candidate.model_dump(mode="json"),
            "mode": settings.mode,
            "repeat": settings.repeat,
            "strict": settings.strict,
            "allowances": [allowance_json(a) for a in settings.allowances],
        }

    def verdict_common(self, *, final: bool = True) -> dict[str, Any]:
        """Identity fields every verdict of this run carries."""
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "stable": self.identity("stable"),
            "candidate": self.identity("candidate"),
            "mode": self.settings.mode,
            "repeat": self.settings.repeat,
            "strict": self.settings.strict,
            "plugin_version": __version__,
            "provenance": self.provenance(final=final),
        }


@dataclass(frozen=True, kw_only=True)
class TestPhase:
    """One phase report of a gated test, as plain data (what travels from xdist workers)."""

    __test__ = False

    test_id: str
    case_id: str
    workflow: str
    arm: Arm
    model: str
    repeat: int
    when: Literal["setup", "call", "teardown"]
    outcome: Literal["passed", "failed", "skipped"]
    duration_s: float
    calls: tuple[CallRecord, ...]
    fallbacks: tuple[str, ...]
    message: str | None
    # What makes this test's data untrustworthy (a missing or unreadable recording...).
    problems: tuple[str, ...] = ()
    # Quality scores recorded in this phase (llm.score), and the workflow's marker budgets.
    scores: tuple[tuple[str, float], ...] = ()
    budgets: Budgets | None = None
    # Cassettes this phase closed: {"path", "interactions", "played": [...], "complete"}.
    cassettes: tuple[dict[str, Any], ...] = ()
    # The cassette file replay lacked a recording in (told per model, not as a problem).
    missing_recordings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Builtin-typed form, safe to attach to a report that xdist serialises."""
        return {
            "test_id": self.test_id,
            "case_id": self.case_id,
            "workflow": self.workflow,
            "arm": self.arm,
            "model": self.model,
            "repeat": self.repeat,
            "when": self.when,
            "outcome": self.outcome,
            "duration_s": self.duration_s,
            "calls": [c.model_dump(mode="json") for c in self.calls],
            "fallbacks": list(self.fallbacks),
            "message": self.message,
            "problems": list(self.problems),
            "cassettes": [dict(c) for c in self.cassettes],
            "scores": [[name, value] for name, value in self.scores],
            "budgets": None if self.budgets is None else self.budgets.model_dump(mode="json"),
            "missing_recordings": list(self.missing_recordings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TestPhase:
        """Inverse of :meth:`to_json`."""
        return cls(
            test_id=data["test_id"],
            case_id=data["case_id"],
            workflow=data["workflow"],
            arm=data["arm"],
            model=data["model"],
            repeat=int(data["repeat"]),
            when=data["when"],
            outcome=data["outcome"],
            duration_s=float(data["duration_s"]),
            calls=tuple(CallRecord.model_validate(c) for c in data["calls"]),
            fallbacks=tuple(data["fallbacks"]),
            message=data.get("message"),
            problems=tuple(data.get("problems", ())),
            cassettes=tuple(data.get("cassettes", ())),
            scores=tuple((str(n), float(v)) for n, v in data.get("scores", ())),
            budgets=None
            if data.get("budgets") is None
            else Budgets.model_validate(data["budgets"]),
            missing_recordings=tuple(data.get("missing_recordings", ())),
        )


def _merge_outcome(current: Outcome, when: str, outcome: str) -> Outcome:
    """Fold a phase outcome into the item outcome: an error outside the call phase is `error`."""
    if current in ("failed", "error"):
        return current
    if outcome == "failed":
        return "failed" if when == "call" else "error"
    if outcome == "skipped" and when in ("setup", "call"):
        return "skipped"
    return current


def resolve_models(
    settings: GateSettings,
) -> tuple[ResolvedModel | None, ResolvedModel | None]:
    """Resolve the stable and candidate names against the catalog and ``modelgate.yaml``."""
    from pytest_modelgate.calls.catalog import load_catalog

    catalog = load_catalog()
    stable = resolve_model(settings.stable, settings.config, catalog) if settings.stable else None
    candidate = (
        resolve_model(settings.candidate, settings.config, catalog) if settings.candidate else None
    )
    return stable, candidate
