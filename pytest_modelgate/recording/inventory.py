"""Recordings a run did not use: unplayed interactions and orphan cassette files; pruning them.

:func:`take_inventory` compares what the run's cassettes hold with what the run played and which
cassette files its collected tests would use; :func:`prune` removes what the inventory found.
Both know nothing about pytest: the caller gathers one :class:`PlayedCassette` per opened cassette
(from every xdist worker), the cassette path of every collected gated test for every model, and
the ``cassettes/`` directories to look in.

Only a full run can tell
    An interaction is unused when no test played it, so the inventory is only meaningful for a run
    that ran every gated test of the suite (no ``-k``/``-m``/node-id selection, no ``-x`` stop,
    nothing interrupted). Deciding that is the caller's job. Within any run the module stays on
    the safe side: a cassette that is expected but was not opened (its test was deselected) is
    neither unused nor an orphan, and a cassette opened by a test that did not run to its end
    (``PlayedCassette.complete`` false) is not judged at all, because the calls the test never
    reached may still be needed.

What is an orphan
    A file under one of the roots that ends in ``.yaml``, carries the ``modelgate_cassette`` format
    mark, and is neither expected nor opened in this run: its test or its model no longer exists
    (or the repeat count shrank). Files without the mark belong to another tool (pytest-recording
    keeps its cassettes in ``cassettes/`` too) and are never reported or deleted. A marked file
    that is not a valid cassette raises :class:`~pytest_modelgate.recording.cassettes.CassetteError`
    naming it: damage is reported, never deleted silently.

What a prune may delete
    Unused interactions of this run's cassettes, and the orphans a :class:`PruneScope` covers:
    by default only those named for one of this run's models and a repeat below its repeat
    count. Another model's recordings, or a larger ``--modelgate-repeat``'s, are paid for and
    may serve another run, so only :meth:`PruneScope.everything` deletes them.

Indexes
    ``played`` and :attr:`UnusedInteraction.index` are 0-based positions in the file's
    ``interactions`` list, as vcrpy's ``Cassette.play_counts`` counts them; messages number
    interactions from 1, as ``CassetteError`` messages do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_modelgate.recording.cassettes import (
    FORMAT_KEY,
    SERIALIZER_NAME,
    cassette_owner,
    make_vcr,
    read_cassette,
)

__all__ = [
    "Inventory",
    "PlayedCassette",
    "PruneResult",
    "PruneScope",
    "UnusedInteraction",
    "prune",
    "take_inventory",
]

_CASSETTE_SUFFIX = ".yaml"

# Our writer always puts the mark first at the top level; a file without that line is not ours.
_FORMAT_MARK = re.compile(rf"^{re.escape(FORMAT_KEY)}\s*:", re.MULTILINE)


@dataclass(frozen=True)
class PlayedCassette:
    """One opening of a cassette in this run: its size and which of its interactions were used.

    ``path`` is the cassette file. ``interactions`` is how many interactions the file holds once
    the test is done, that is as vcrpy saved it (recorded ones included; 0 when the file does not
    exist). ``played`` holds the 0-based indexes, in that saved file, of the interactions this test
    used: replayed ones and ones recorded in this run. ``complete`` is false when the test did not
    run to its end (failed, errored, skipped or interrupted): such a cassette is not judged.
    """

    path: Path | str
    interactions: int
    played: frozenset[int]
    complete: bool = True

    def __post_init__(self) -> None:
        if self.interactions < 0:
            raise ValueError(f"{self.path}: interactions must be >= 0, got {self.interactions}")
        outside = sorted(i for i in self.played if not 0 <= i < self.interactions)
        if outside:
            raise ValueError(
                f"{self.path}: played indexes {outside} are outside the cassette's "
                f"{self.interactions} interactions"
            )


@dataclass(frozen=True)
class UnusedInteraction:
    """A recorded interaction no test played.

    ``path`` is its cassette, ``index`` its 0-based position there, ``interactions`` how many the
    file held when the inventory was taken (:func:`prune` checks it has not changed since), and
    ``method`` and ``uri`` the recorded request's.
    """

    path: Path
    index: int
    interactions: int
    method: str
    uri: str

    @property
    def request_line(self) -> str:
        """``POST /v1/chat/completions``: the method and the URL's path (and query)."""
        parts = urlsplit(self.uri)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return f"{self.method.upper()} {target}"


@dataclass(frozen=True)
class PruneScope:
    """Which orphan cassettes a prune may delete: those of this run's models and repeats.

    ``models`` are the models the run played (its arms); ``repeats`` its ``--modelgate-repeat``.
    An orphan is covered when its file name says it is the cassette of one of ``models`` for a
    repeat below ``repeats``: its test is gone. Other orphans (another model's, or a repeat of a
    larger ``--modelgate-repeat``) may still be wanted by another run and cost money to record
    again, so they are kept unless the scope is :meth:`everything` (``--modelgate-prune=all``).
    Unused interactions are always in scope: only this run's cassettes are judged for them.
    """

    models: frozenset[str] = frozenset()
    repeats: int = 1
    all: bool = False

    @classmethod
    def everything(cls) -> PruneScope:
        """Every orphan, whichever model or repeat it belongs to."""
        return cls(all=True)

    def covers(self, path: Path) -> bool:
        """Whether the orphan cassette ``path`` may be deleted under this scope."""
        if self.all:
            return True
        owner = cassette_owner(path.name, self.models)
        return owner is not None and owner[1] < self.repeats


@dataclass(frozen=True)
class Inventory:
    """What :func:`take_inventory` found, and the roots :func:`prune` may change files under.

    ``unused``: recorded interactions no test played, by path and index. ``orphans``: cassette
    files no collected test uses. ``changed``: played cassettes that the run saw with fewer or more
    interactions than the file now holds (two openings raced, or the file was edited during the
    run); their played indexes do not describe the file, so they are not judged. All paths are
    absolute, sorted, with their directories resolved.
    """

    unused: tuple[UnusedInteraction, ...] = ()
    orphans: tuple[Path, ...] = ()
    changed: tuple[Path, ...] = ()
    roots: tuple[Path, ...] = ()

    @property
    def clean(self) -> bool:
        """Whether there is nothing to prune."""
        return not self.unused and not self.orphans

    def within(self, scope: PruneScope) -> Inventory:
        """This inventory with only the orphans ``scope`` covers: what a prune would remove."""
        return Inventory(
            unused=self.unused,
            orphans=tuple(path for path in self.orphans if scope.covers(path)),
            changed=self.changed,
            roots=self.roots,
        )

    def summary(
        self, scope: PruneScope, relative_to: Path | None = None, *, can_prune: bool = True
    ) -> list[str]:
        """One line on what is unused, one on what only ``=all`` removes, then changed files.

        ``can_prune`` false (a partial run) says that only a full run can remove them.
        """
        pruned = self.within(scope)
        kept = len(self.orphans) - len(pruned.orphans)
        out: list[str] = []
        if not pruned.clean:
            files = len({item.path for item in pruned.unused})
            parts = []
            if pruned.orphans:
                parts.append(f"{_count(len(pruned.orphans), 'cassette')} no collected test uses")
            if pruned.unused:
                parts.append(
                    f"{_count(len(pruned.unused), 'interaction')} no test played "
                    f"(in {_count(files, 'cassette')})"
                )
            total = len(pruned.orphans) + len(pruned.unused)
            how = (
                "--modelgate-prune removes them, --modelgate-prune=dry-run lists them"
                if can_prune
                else "a full run (no -k/-m/paths, not stopped early) with --modelgate-prune "
                "removes them"
            )
            out.append(f"{_count(total, 'recording')} unused: {', '.join(parts)}; {how}")
        if kept:
            out.append(
                f"{_count(kept, 'cassette')} of other models or repeats no test of this run "
                "uses: kept, only --modelgate-prune=all removes them"
            )
        out += [
            f"{_shown(path, relative_to)}: changed while this run used it; "
            "not checked for unused interactions"
            for path in self.changed
        ]
        return out

    def dry_run_lines(self, scope: PruneScope, relative_to: Path | None = None) -> list[str]:
        """What a prune under ``scope`` would remove, one line per interaction and file."""
        pruned = self.within(scope)
        out = [
            f"{_shown(item.path, relative_to)}: interaction {item.index + 1} of "
            f"{item.interactions} ({item.request_line}) would be removed"
            for item in pruned.unused
        ]
        out += [f"{_shown(path, relative_to)}: would be deleted" for path in pruned.orphans]
        return out

    def lines(self, relative_to: Path | None = None) -> list[str]:
        """One line per finding, paths relative to ``relative_to`` (the rootdir) when under it."""
        out = [
            f"{_shown(item.path, relative_to)}: interaction {item.index + 1} of "
            f"{item.interactions} ({item.request_line}) was not played"
            for item in self.unused
        ]
        out += [
            f"{_shown(path, relative_to)}: no collected test uses this cassette"
            for path in self.orphans
        ]
        out += [
            f"{_shown(path, relative_to)}: changed while this run used it; "
            "not checked for unused interactions"
            for path in self.changed
        ]
        return out


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune` changed on disk.

    ``rewritten``: cassettes rewritten without their unused interactions. ``emptied``: cassettes
    deleted because none of their interactions was used. ``interactions_removed`` counts the
    interactions removed from both. ``orphans_deleted``: orphan files deleted.
    ``directories_removed``: directories left empty and removed. ``skipped``: files left alone,
    with the reason (outside the roots, or changed since the inventory was taken).
    """

    rewritten: tuple[Path, ...] = ()
    emptied: tuple[Path, ...] = ()
    interactions_removed: int = 0
    orphans_deleted: tuple[Path, ...] = ()
    directories_removed: tuple[Path, ...] = ()
    skipped: tuple[tuple[Path, str], ...] = ()

    def lines(self, relative_to: Path | None = None) -> list[str]:
        """One line per change, then a total; paths as in :meth:`Inventory.lines`."""
        out = [f"{_shown(path, relative_to)}: rewritten" for path in self.rewritten]
        out += [
            f"{_shown(path, relative_to)}: deleted, no interaction was played"
            for path in self.emptied
        ]
        out += [
            f"{_shown(path, relative_to)}: deleted, no collected test uses it"
            for path in self.orphans_deleted
        ]
        out += [
            f"{_shown(path, relative_to)}: removed the empty directory"
            for path in self.directories_removed
        ]
        out += [f"{_shown(path, relative_to)}: left alone, {why}" for path, why in self.skipped]
        out.append(
            f"pruned {_count(self.interactions_removed, 'unused interaction')} "
            f"and {_count(len(self.orphans_deleted), 'orphan cassette')}"
        )
        return out


# -- taking the inventory --------------------------------------------------------------------------


@dataclass
class _Openings:
    """Every opening of one cassette in the run, merged."""

    interactions: int = 0
    played: set[int] = field(default_factory=set)
    complete: bool = True


def take_inventory(
    played: Iterable[PlayedCassette], *, expected: Iterable[Path | str], roots: Iterable[Path]
) -> Inventory:
    """Find the unused interactions of the cassettes opened in this run and the orphan files.

    ``played``: one entry per cassette opening in this run, from every worker; openings of the
    same file (two arms on the same model) are merged by the union of their played indexes, which
    holds because recording only appends. ``expected``: the cassette path of every collected gated
    test for every model and repeat the suite knows, whether or not the test ran. ``roots``: the
    ``cassettes/`` directories to look for orphans in (missing ones are skipped); :func:`prune`
    changes nothing outside them. See the module docstring for what only a full run can tell.

    Reads the opened cassettes that have unplayed interactions and the orphan candidates (files
    not expected); raises ``CassetteError`` (naming the file) for a corrupt one.
    """
    locate = _locator()
    root_dirs = tuple(sorted({Path(root).resolve() for root in roots}))
    # Paths as located strings: a run opens thousands of cassettes, and a Path object per
    # path (hashed, compared, sorted) cost more than the rest of the inventory.
    openings: dict[str, _Openings] = {}
    for cassette in played:
        merged = openings.setdefault(locate(cassette.path), _Openings())
        merged.interactions = max(merged.interactions, cassette.interactions)
        merged.played |= cassette.played
        merged.complete = merged.complete and cassette.complete

    unused: list[UnusedInteraction] = []
    changed: list[Path] = []
    # A cassette played through is not read again: a full replay stays cheap at its end.
    to_read = {
        Path(located): merged
        for located, merged in openings.items()
        if merged.complete and len(merged.played) != merged.interactions
    }
    for path, merged in sorted(to_read.items()):
        if not path.is_file():
            # Nothing to prune; a file that existed while played was deleted during the run.
            if merged.interactions:
                changed.append(path)
            continue
        interactions = read_cassette(path)["interactions"]
        if len(interactions) != merged.interactions:
            changed.append(path)
            continue
        unused += (
            UnusedInteraction(
                path=path,
                index=index,
                interactions=len(interactions),
                method=str(interaction["request"]["method"]),
                uri=str(interaction["request"]["uri"]),
            )
            for index, interaction in enumerate(interactions)
            if index not in merged.played
        )

    used = {locate(path) for path in expected} | set(openings)
    return Inventory(
        unused=tuple(unused),
        orphans=_orphans(root_dirs, used),
        changed=tuple(changed),
        roots=root_dirs,
    )


def _orphans(roots: tuple[Path, ...], used: set[str]) -> tuple[Path, ...]:
    candidates = sorted(
        {Path(path) for root in roots for path in _cassette_files(root) if path not in used}
    )
    if not candidates:
        return ()
    # The same file under another spelling (letter case on macOS/Windows, a hard link) is used.
    used_ids = {file_id for file_id in map(_file_id, map(Path, used)) if file_id is not None}
    orphans = []
    for path in candidates:
        if _file_id(path) in used_ids or not _has_format_mark(path):
            continue
        read_cassette(path)  # a damaged cassette of ours is reported, not deleted
        orphans.append(path)
    return tuple(orphans)


def _cassette_files(root: Path) -> Iterable[str]:
    # os.walk does not follow directory links, so nothing outside the root is listed.
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(_CASSETTE_SUFFIX) and not name.startswith("."):
                yield os.path.join(folder, name)


def _has_format_mark(path: Path) -> bool:
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return False
    except OSError:
        return True  # unreadable: let read_cassette name the file and the problem
    return _FORMAT_MARK.search(text) is not None


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def _locator() -> Callable[[Path | str], str]:
    """Absolute paths with the directory resolved (links, ``..``) and the file name kept.

    The name is kept so that a link to a cassette is a file of its own, inside its root. Resolved
    directories are cached: thousands of cassettes share a handful of them. The folder resolves
    as ``Path.resolve`` resolves it (``os.path.realpath``), and the result is the string
    ``os.walk`` gives for the same file under a resolved root.
    """
    folders: dict[str, str] = {}

    def locate(path: Path | str) -> str:
        folder, name = os.path.split(os.fspath(path))
        resolved = folders.get(folder)
        if resolved is None:
            resolved = folders[folder] = os.path.realpath(folder or os.curdir)
        return os.path.join(resolved, name)

    return locate


# -- pruning ---------------------------------------------------------------------------------------


def prune(inventory: Inventory, scope: PruneScope | None = None) -> PruneResult:
    """Remove what ``inventory`` found: unused interactions, then orphan files, then empty dirs.

    With ``scope``, only the orphans it covers are deleted (see :class:`PruneScope`); without,
    every orphan is.

    Each cassette is loaded and saved with the persister and serializer of
    :func:`~pytest_modelgate.recording.cassettes.make_vcr`, so it keeps the format mark and the
    layout a recording run writes, and is replaced atomically. A cassette left without
    interactions is deleted. Directories emptied by a deletion are removed, up to and including
    the root they are under. Files outside ``inventory.roots``, and cassettes whose interactions
    no longer match the inventory, are left alone and listed in ``skipped``. Raises
    ``CassetteError`` for a cassette that became unreadable since the inventory was taken.
    """
    if scope is not None:
        inventory = inventory.within(scope)
    # Located again, as a hand-made inventory may hold paths with ``..`` or links in them.
    located = _locator()

    def locate(path: Path | str) -> Path:
        return Path(located(path))

    roots = tuple(Path(root).resolve() for root in inventory.roots)
    by_path: dict[Path, list[UnusedInteraction]] = {}
    for item in inventory.unused:
        by_path.setdefault(locate(item.path), []).append(item)

    rewritten: list[Path] = []
    emptied: list[Path] = []
    deleted_orphans: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    removed = 0
    recorder: Any = None
    for path, items in sorted(by_path.items()):
        if _root_of(path, roots) is None:
            skipped.append((path, "outside the cassette directories"))
            continue
        if recorder is None:
            recorder = make_vcr(record_mode="none", secrets=())
        outcome = _drop_interactions(path, items, recorder)
        if outcome is None:
            skipped.append((path, "changed since it was checked"))
            continue
        removed += len(items)
        (rewritten if outcome else emptied).append(path)

    for path in map(locate, inventory.orphans):
        if _root_of(path, roots) is None:
            skipped.append((path, "outside the cassette directories"))
            continue
        path.unlink(missing_ok=True)
        deleted_orphans.append(path)

    directories = _remove_empty_directories([*emptied, *deleted_orphans], roots)
    return PruneResult(
        rewritten=tuple(rewritten),
        emptied=tuple(emptied),
        interactions_removed=removed,
        orphans_deleted=tuple(deleted_orphans),
        directories_removed=directories,
        skipped=tuple(skipped),
    )


def _drop_interactions(path: Path, items: list[UnusedInteraction], recorder: Any) -> bool | None:
    """Rewrite ``path`` without ``items``: True if rewritten, False if deleted, None if changed."""
    from vcr.persisters.filesystem import CassetteNotFoundError

    serializer = recorder.serializers[SERIALIZER_NAME]
    try:
        requests, responses, *metadata = recorder.persister.load_cassette(
            str(path), serializer=serializer
        )
    except CassetteNotFoundError:
        return None
    drop = {item.index for item in items}
    # Indexes are only trusted while the file holds as many interactions as the inventory saw
    # and each still points at the request the inventory named.
    for item in items:
        if item.interactions != len(requests) or item.index >= len(requests):
            return None
        request = requests[item.index]
        if (str(request.method), str(request.uri)) != (item.method, item.uri):
            return None
    kept = [index for index in range(len(requests)) if index not in drop]
    if not kept:
        path.unlink()
        return False
    cassette: dict[str, Any] = {
        "requests": [requests[index] for index in kept],
        "responses": [responses[index] for index in kept],
    }
    if metadata and metadata[0]:
        cassette["metadata"] = metadata[0]
    recorder.persister.save_cassette(str(path), cassette, serializer=serializer)
    return True


def _root_of(path: Path, roots: Iterable[Path]) -> Path | None:
    """The root ``path`` lies under; both are located, so ``..`` and links cannot escape it."""
    for root in roots:
        if path != root and path.is_relative_to(root):
            return root
    return None


def _remove_empty_directories(deleted: Iterable[Path], roots: tuple[Path, ...]) -> tuple[Path, ...]:
    removed: list[Path] = []
    for path in deleted:
        root = _root_of(path, roots)
        folder = path.parent
        # Up to and including the root: an empty cassettes/ directory is left behind too.
        while root is not None and folder.is_relative_to(root) and folder not in removed:
            try:
                folder.rmdir()  # fails unless empty: exactly the directories left behind
            except OSError:
                break
            removed.append(folder)
            folder = folder.parent
    return tuple(sorted(removed))


# -- text ------------------------------------------------------------------------------------------


def _shown(path: Path, relative_to: Path | None) -> str:
    if relative_to is not None:
        base = relative_to.resolve()
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return str(path)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
