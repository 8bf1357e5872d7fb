"""Inventory of recordings: unplayed interactions and orphan cassettes are found, then pruned.

Cassettes are recorded from the simulator through httpx with ``make_vcr`` and replayed with vcrpy
in record mode ``none``; each opening's :class:`PlayedCassette` is built from vcrpy's cassette the
way the ``llm`` fixture is meant to build it at teardown (see :func:`opened`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from vcr.errors import CannotOverwriteExistingCassetteException

from pytest_modelgate.recording.cassettes import (
    FORMAT_KEY,
    CassetteError,
    RecordMode,
    cassette_owner,
    cassette_path,
    make_vcr,
    read_cassette,
)
from pytest_modelgate.recording.inventory import (
    Inventory,
    PlayedCassette,
    PruneScope,
    UnusedInteraction,
    prune,
    take_inventory,
)
from pytest_modelgate.simulator import Scenario, SimulatorServer

KEY = "sk-sim-inventory-0123456789abcdef"
MODELS = ("sim-a", "sim-b")

# ------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    """One instant simulator for the module; replays use record mode none, never the network."""
    scenario = Scenario.model_validate(
        {"api_key": KEY, "seed": 3, "models": {model: {} for model in MODELS}}
    )
    server = SimulatorServer(scenario, port=0).start()
    yield server
    server.stop()


class Project:
    """A user's project in tmp_path: tests/test_wf.py and its cassettes next to it."""

    def __init__(self, root: Path, sim: SimulatorServer) -> None:
        self.root = root
        self.tests = root / "tests"
        self.cassettes = self.tests / "cassettes"
        self.sim = sim

    def path(self, case: str, model: str = "sim-a", *, module: str = "test_wf", **kw: Any) -> Path:
        return cassette_path(self.tests / f"{module}.py", case, model, **kw)

    def ask(self, model: str, *questions: str) -> None:
        """One chat call per question, each a distinct recorded interaction."""
        with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}) as client:
            for question in questions:
                body = {"model": model, "messages": [{"role": "user", "content": question}]}
                response = client.post(f"{self.sim.base_url}/chat/completions", json=body)
                assert response.status_code == 200, response.text

    def record(self, path: Path, model: str, *questions: str) -> None:
        with opened(path, "new_episodes", []):
            self.ask(model, *questions)


@pytest.fixture
def project(tmp_path: Path, sim: SimulatorServer) -> Project:
    return Project(tmp_path, sim)


@contextlib.contextmanager
def opened(
    path: Path, mode: RecordMode, played: list[PlayedCassette], *, complete: bool = True
) -> Iterator[Any]:
    """Open ``path`` as the llm fixture does; append what it played to ``played`` on exit.

    What the wiring is to report: the indexes vcrpy replayed, plus the interactions recorded in
    this opening. ``none`` and ``new_episodes`` save (if at all) every interaction vcrpy holds,
    the recorded ones appended after the loaded ones. ``all`` saves the recorded ones after the
    loaded ones they did not replace, so only the saved file tells how many it holds; they are
    its last ``recorded`` entries.
    """
    with make_vcr(record_mode=mode, secrets=[KEY]).use_cassette(str(path)) as cassette:
        loaded = len(cassette)
        yield cassette
    recorded = len(cassette) - loaded
    saved = len(cassette)
    if mode == "all" and path.exists():
        saved = len(read_cassette(path)["interactions"])
    replayed = {index for index, count in cassette.play_counts.items() if count}
    played.append(
        PlayedCassette(
            path=path,
            interactions=saved,
            played=frozenset(replayed | set(range(saved - recorded, saved))),
            complete=complete,
        )
    )


def questions(path: Path) -> list[str]:
    """The user message of each recorded request, in file order."""
    return [
        json.loads(interaction["request"]["body"])["messages"][0]["content"]
        for interaction in read_cassette(path)["interactions"]
    ]


def write_marked(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{FORMAT_KEY}: 1\n{text}", encoding="utf-8")


# ------------------------------------------------------------------------------------------
# taking the inventory


def test_an_unplayed_interaction_is_reported_by_file_and_interaction(project: Project) -> None:
    path = project.path("test_triage[refund]")
    project.record(path, "sim-a", "q1", "q2", "q3")
    played: list[PlayedCassette] = []
    with opened(path, "none", played):
        project.ask("sim-a", "q1", "q3")

    inventory = take_inventory(played, expected=[path], roots=[project.cassettes])

    assert inventory.unused == (
        UnusedInteraction(
            path=path,
            index=1,
            interactions=3,
            method="POST",
            uri=f"{project.sim.base_url}/chat/completions",
        ),
    )
    assert inventory.orphans == ()
    assert not inventory.clean
    assert inventory.lines(project.tests) == [
        "cassettes/test_wf/test_triage[refund]--sim-a.yaml: "
        "interaction 2 of 3 (POST /v1/chat/completions) was not played"
    ]
    # Outside relative_to, the path is shown whole.
    assert inventory.lines(project.root / "elsewhere")[0].startswith(str(path))


def test_openings_of_one_cassette_are_merged_and_recorded_calls_count_as_used(
    project: Project,
) -> None:
    path = project.path("test_triage[refund]")
    project.record(path, "sim-a", "q1", "q2", "q3", "q4")
    played: list[PlayedCassette] = []
    # Two arms on the same model open the same file; the second also records a new call.
    with opened(path, "none", played):
        project.ask("sim-a", "q1")
    with opened(path, "new_episodes", played):
        project.ask("sim-a", "q2", "q5")

    assert [p.played for p in played] == [frozenset({0}), frozenset({1, 4})]
    inventory = take_inventory(played, expected=[path], roots=[project.cassettes])

    assert [(item.index, item.interactions) for item in inventory.unused] == [(2, 5), (3, 5)]
    assert inventory.changed == ()


def test_a_rerecorded_cassette_reports_the_calls_no_longer_made(project: Project) -> None:
    path = project.path("test_triage[refund]")
    project.record(path, "sim-a", "q1", "q2")
    played: list[PlayedCassette] = []
    with opened(path, "all", played):
        project.ask("sim-a", "q2", "q3")

    inventory = take_inventory(played, expected=[path], roots=[project.cassettes])
    stale = {questions(path)[item.index] for item in inventory.unused}
    assert "q1" in stale

    prune(inventory)
    assert questions(path) == ["q2", "q3"]


def test_a_test_that_did_not_finish_leaves_its_cassette_unjudged(project: Project) -> None:
    path = project.path("test_triage[refund]")
    project.record(path, "sim-a", "q1", "q2")
    played: list[PlayedCassette] = []
    with opened(path, "none", played):
        project.ask("sim-a", "q1")
    with opened(path, "none", played, complete=False):
        project.ask("sim-a", "q1")

    inventory = take_inventory(played, expected=[path], roots=[project.cassettes])

    assert inventory == Inventory(roots=(project.cassettes,))
    assert inventory.clean
    assert inventory.lines() == []


def test_files_of_removed_tests_models_and_repeats_are_orphans(project: Project) -> None:
    used = project.path("test_triage[refund]")
    other_model = project.path("test_triage[refund]", "sim-b")
    second_repeat = project.path("test_triage[refund]", repeat=1, repeats=2)
    gone = project.path("test_gone")
    old_module = project.path("test_a", module="test_old")
    deselected = project.path("test_kept")
    project.record(used, "sim-a", "q1")
    project.record(other_model, "sim-b", "q1")
    project.record(second_repeat, "sim-a", "q1")
    project.record(gone, "sim-a", "q1")
    project.record(old_module, "sim-a", "q1")
    project.record(deselected, "sim-a", "q1", "q2")
    # Another tool's cassette and other files in the same folders are not ours to judge.
    foreign = project.cassettes / "test_wf" / "test_other.yaml"
    foreign.write_text(yaml.safe_dump({"version": 1, "interactions": []}), encoding="utf-8")
    (project.cassettes / "test_wf" / "README.txt").write_text("notes\n", encoding="utf-8")

    played: list[PlayedCassette] = []
    with opened(used, "none", played):
        project.ask("sim-a", "q1")
    # The run knows only sim-a, one repeat, and test_kept was collected but deselected; the
    # expected path is spelled differently from the file, which does not make it an orphan.
    odd_spelling = project.tests / "x" / ".." / deselected.relative_to(project.tests)
    inventory = take_inventory(
        played,
        expected=[used, odd_spelling],
        roots=[project.cassettes, project.root / "no-such-dir" / "cassettes"],
    )

    assert inventory.orphans == tuple(sorted([other_model, second_repeat, gone, old_module]))
    assert inventory.unused == ()
    assert inventory.lines(project.tests) == [
        "cassettes/test_old/test_a--sim-a.yaml: no collected test uses this cassette",
        "cassettes/test_wf/test_gone--sim-a.yaml: no collected test uses this cassette",
        "cassettes/test_wf/test_triage[refund]--sim-a--rep2.yaml: "
        "no collected test uses this cassette",
        "cassettes/test_wf/test_triage[refund]--sim-b.yaml: no collected test uses this cassette",
    ]


def test_a_cassette_that_changed_during_the_run_is_not_judged(project: Project) -> None:
    path = project.path("test_triage[refund]")
    project.record(path, "sim-a", "q1", "q2", "q3")
    # The run played it while it held two interactions; another writer appended one since.
    played = [PlayedCassette(path=path, interactions=2, played=frozenset({0}))]

    inventory = take_inventory(played, expected=[path], roots=[project.cassettes])

    assert inventory.unused == ()
    assert inventory.changed == (path,)
    assert inventory.lines(project.tests) == [
        "cassettes/test_wf/test_triage[refund]--sim-a.yaml: changed while this run used it; "
        "not checked for unused interactions"
    ]
    assert prune(inventory).rewritten == ()
    assert questions(path) == ["q1", "q2", "q3"]


def test_played_cassette_rejects_indexes_outside_the_cassette(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"played indexes \[2\] are outside"):
        PlayedCassette(path=tmp_path / "c.yaml", interactions=2, played=frozenset({0, 2}))
    with pytest.raises(ValueError, match="interactions must be >= 0"):
        PlayedCassette(path=tmp_path / "c.yaml", interactions=-1, played=frozenset())


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("interactions: [\n", "not a valid YAML file"),
        ("version: 1\ninteractions: [{request: 3}]\n", "interaction 1: .request. is missing"),
    ],
    ids=["broken-yaml", "malformed"],
)
def test_a_corrupt_cassette_names_the_file_and_is_not_deleted(
    project: Project, text: str, reason: str
) -> None:
    played_path = project.path("test_triage[refund]")
    project.record(played_path, "sim-a", "q1", "q2")
    played: list[PlayedCassette] = []
    with opened(played_path, "none", played):
        project.ask("sim-a", "q1")
    write_marked(played_path, text)
    # A cassette played through is not read again (the next run's opening reports damage).
    played_through = PlayedCassette(path=played_path, interactions=2, played=frozenset({0, 1}))
    assert take_inventory([played_through], expected=[played_path], roots=[]).clean

    with pytest.raises(CassetteError, match=reason) as played_error:
        take_inventory(played, expected=[played_path], roots=[project.cassettes])
    assert played_error.value.path == played_path

    orphan = project.path("test_gone")
    write_marked(orphan, text)
    with pytest.raises(CassetteError, match=reason) as orphan_error:
        take_inventory([], expected=[played_path], roots=[project.cassettes])
    assert orphan_error.value.path == orphan
    assert orphan.read_text(encoding="utf-8").endswith(text)


# ------------------------------------------------------------------------------------------
# pruning


def test_prune_rewrites_atomically_and_the_kept_interactions_still_replay(
    project: Project,
) -> None:
    path = project.path("test_triage[refund]")
    project.record(path, "sim-a", "q1", "q2", "q3")
    before = read_cassette(path)
    inode = path.stat().st_ino
    played: list[PlayedCassette] = []
    with opened(path, "none", played):
        project.ask("sim-a", "q1", "q3")

    result = prune(take_inventory(played, expected=[path], roots=[project.cassettes]))

    assert result.rewritten == (path,)
    assert result.interactions_removed == 1
    assert (result.emptied, result.orphans_deleted, result.directories_removed) == ((), (), ())
    # Replaced through a temporary file, not written in place; no temporary file left behind.
    assert path.stat().st_ino != inode
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# pytest-modelgate cassette")
    after = read_cassette(path)
    assert after[FORMAT_KEY] == 1
    assert after["interactions"] == [before["interactions"][0], before["interactions"][2]]

    replayed: list[PlayedCassette] = []
    with opened(path, "none", replayed) as cassette:
        project.ask("sim-a", "q1", "q3")
    assert cassette.all_played
    with (
        pytest.raises(CannotOverwriteExistingCassetteException),
        opened(path, "none", []),
    ):
        project.ask("sim-a", "q2")
    assert take_inventory(replayed, expected=[path], roots=[project.cassettes]).clean


def test_prune_deletes_emptied_cassettes_orphans_and_the_directories_left_empty(
    project: Project,
) -> None:
    kept = project.path("test_b")
    emptied = project.path("test_a")
    orphan = project.path("test_x", module="test_old")
    other_root = project.tests / "sub" / "cassettes"
    lone_orphan = cassette_path(project.tests / "sub" / "test_s.py", "test_s", "sim-b")
    foreign = project.cassettes / "test_old" / "nested" / "other.yaml"
    project.record(kept, "sim-a", "q1")
    project.record(emptied, "sim-a", "q1", "q2")
    project.record(orphan, "sim-a", "q1")
    project.record(lone_orphan, "sim-b", "q1")
    foreign.parent.mkdir(parents=True)
    foreign.write_text("interactions: []\n", encoding="utf-8")
    played: list[PlayedCassette] = []
    with opened(kept, "none", played):
        project.ask("sim-a", "q1")
    with opened(emptied, "none", played):
        pass  # the test no longer makes these calls

    inventory = take_inventory(
        played, expected=[kept, emptied], roots=[project.cassettes, other_root]
    )
    assert inventory.orphans == (orphan, lone_orphan)
    result = prune(inventory)

    assert result.rewritten == ()
    assert result.emptied == (emptied,)
    assert result.interactions_removed == 2
    assert result.orphans_deleted == (orphan, lone_orphan)
    assert result.skipped == ()
    # test_old still holds another tool's file; sub/cassettes is emptied up to its root.
    assert result.directories_removed == (other_root, lone_orphan.parent)
    assert not emptied.exists()
    assert not orphan.exists()
    assert kept.is_file()
    assert foreign.is_file()
    assert (project.tests / "sub").is_dir()
    assert result.lines(project.tests) == [
        "cassettes/test_wf/test_a--sim-a.yaml: deleted, no interaction was played",
        "cassettes/test_old/test_x--sim-a.yaml: deleted, no collected test uses it",
        "sub/cassettes/test_s/test_s--sim-b.yaml: deleted, no collected test uses it",
        "sub/cassettes: removed the empty directory",
        "sub/cassettes/test_s: removed the empty directory",
        "pruned 2 unused interactions and 2 orphan cassettes",
    ]
    assert take_inventory(played[:1], expected=[kept], roots=[project.cassettes]).clean


def test_prune_touches_nothing_outside_the_roots(project: Project, tmp_path: Path) -> None:
    outside = cassette_path(tmp_path / "elsewhere" / "test_z.py", "test_z", "sim-a")
    project.record(outside, "sim-a", "q1", "q2")
    project.record(project.path("test_b"), "sim-a", "q1")
    # A link inside a root to a folder elsewhere is not followed: its cassettes are not ours here.
    linked = tmp_path / "linked"
    write_marked(linked / "test_l--sim-a.yaml", "version: 1\ninteractions: []\n")
    try:
        os.symlink(linked, project.cassettes / "linked", target_is_directory=True)
    except OSError:
        pytest.skip("this file system does not support symbolic links")
    played: list[PlayedCassette] = []
    with opened(outside, "none", played):
        project.ask("sim-a", "q1")
    before = outside.read_bytes()

    inventory = take_inventory(played, expected=[project.path("test_b")], roots=[project.cassettes])
    assert [item.path for item in inventory.unused] == [outside]
    assert inventory.orphans == ()
    # A hand-made inventory cannot escape the roots with ``..`` either.
    escaping = project.cassettes / ".." / ".." / outside.relative_to(tmp_path)
    result = prune(Inventory(unused=inventory.unused, orphans=(escaping,), roots=inventory.roots))

    assert result.skipped == (
        (outside, "outside the cassette directories"),
        (outside, "outside the cassette directories"),
    )
    assert (result.rewritten, result.orphans_deleted, result.directories_removed) == ((), (), ())
    assert outside.read_bytes() == before
    assert (linked / "test_l--sim-a.yaml").is_file()
    assert result.lines()[-1] == "pruned 0 unused interactions and 0 orphan cassettes"


def test_prune_leaves_a_cassette_that_changed_since_the_inventory(project: Project) -> None:
    path = project.path("test_triage[refund]")
    project.record(path, "sim-a", "q1", "q2")
    played: list[PlayedCassette] = []
    with opened(path, "none", played):
        project.ask("sim-a", "q1")
    inventory = take_inventory(played, expected=[path], roots=[project.cassettes])
    project.record(path, "sim-a", "q3")  # recorded again before prune ran

    result = prune(inventory)

    assert result.skipped == ((path, "changed since it was checked"),)
    assert result.interactions_removed == 0
    assert questions(path) == ["q1", "q2", "q3"]


# ------------------------------------------------------------------------------------------
# Issue 10 item 9: a plain prune keeps other models' and repeats' recordings


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("test_a--sim-a.yaml", ("sim-a", 0)),
        ("test_a[p--q]--sim-a--rep2.yaml", ("sim-a", 1)),
        ("test_a--sim-a--rep12.yaml", ("sim-a", 11)),
        ("test_a--sim-b.yaml", None),
        ("test_a--sim-a--rep1.yaml", None),  # repeat 0 has no suffix
        ("test_a--x--sim-a.yaml", ("x--sim-a", 0)),  # the longest model name wins
        ("--sim-a.yaml", None),
        ("test_a--org%2Fmodel.yaml", ("org/model", 0)),
    ],
)
def test_cassette_owner_inverts_the_model_and_repeat_of_cassette_path(
    name: str, owner: tuple[str, int] | None
) -> None:
    assert cassette_owner(name, ["sim-a", "x--sim-a", "org/model"]) == owner


def test_cassette_owner_agrees_with_cassette_path() -> None:
    for model in ("qwen-max", "deepseek/chat v2", "a" * 120):
        for repeat in range(3):
            path = cassette_path(Path("t/test_x.py"), "test_x[1]", model, repeat=repeat, repeats=3)
            assert cassette_owner(path.name, [model, "other"]) == (model, repeat)


def test_a_scoped_prune_deletes_only_orphans_of_this_runs_models_and_repeats(
    project: Project,
) -> None:
    used = project.path("test_triage[refund]")
    other_model = project.path("test_triage[refund]", "sim-b")
    second_repeat = project.path("test_triage[refund]", repeat=1, repeats=2)
    gone = project.path("test_gone")
    for path, model in ((used, "sim-a"), (other_model, "sim-b"), (second_repeat, "sim-a")):
        project.record(path, model, "q1")
    project.record(gone, "sim-a", "q1", "q2")
    played: list[PlayedCassette] = []
    with opened(used, "none", played):
        project.ask("sim-a", "q1")
    inventory = take_inventory(played, expected=[used], roots=[project.cassettes])
    assert inventory.orphans == tuple(sorted([other_model, second_repeat, gone]))
    scope = PruneScope(models=frozenset({"sim-a"}), repeats=1)

    assert inventory.within(scope).orphans == (gone,)
    assert inventory.within(PruneScope.everything()) == inventory
    assert inventory.summary(scope, project.tests) == [
        "1 recording unused: 1 cassette no collected test uses; --modelgate-prune removes "
        "them, --modelgate-prune=dry-run lists them",
        "2 cassettes of other models or repeats no test of this run uses: kept, only "
        "--modelgate-prune=all removes them",
    ]
    assert inventory.dry_run_lines(scope, project.tests) == [
        "cassettes/test_wf/test_gone--sim-a.yaml: would be deleted"
    ]
    # With two repeats the -rep2 file is this run's too.
    two_repeats = PruneScope(models=frozenset({"sim-a"}), repeats=2)
    assert inventory.within(two_repeats).orphans == (gone, second_repeat)

    result = prune(inventory, scope)

    assert result.orphans_deleted == (gone,)
    assert not gone.exists()
    assert other_model.is_file()
    assert second_repeat.is_file()
    again = take_inventory(played, expected=[used], roots=[project.cassettes])
    assert prune(again, PruneScope.everything()).orphans_deleted == (second_repeat, other_model)
    assert not other_model.exists()
    assert not second_repeat.exists()
