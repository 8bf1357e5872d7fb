"""Edit one route of modelgate.yaml in place, keeping every comment and every other line.

``modelgate rollout`` changes a few fields of one route (``candidate``, ``canary_percent``,
``shadow_percent``, ``rollback``, ``steps``). Rewriting the file from its parsed form would drop
the comments that explain the configuration, so :func:`edit_route` works on the text: it finds
the route's block under ``routes:`` (block style), replaces the lines of each changed field (a
scalar keeps its trailing comment), appends the fields the route did not have after its last
field, and removes the fields the new route drops. Everything outside those lines is kept byte for
byte. The caller checks the result by parsing it (it must give exactly the new route).

What it cannot edit safely (a route or ``routes:`` in flow style, ``{...}`` on one line; tabs;
anchors and aliases in the route) raises :class:`YamlEditError` with the line, and nothing is
written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from pytest_modelgate.errors import ModelgateError

__all__ = ["YamlEditError", "edit_route"]

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-]+|\"[^\"]+\"|'[^']+'):(?P<rest>.*)$")


# An anchor (&name) or alias (*name) where a value starts.
_ANCHOR = re.compile(r"(?:^|[\s:\[{,-])[&*][A-Za-z0-9_]")


class YamlEditError(ModelgateError):
    """The route cannot be edited in place (the message names the file's line)."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _unquote(key: str) -> str:
    return key[1:-1] if key[:1] in "\"'" else key


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The index after the last content line nested deeper than ``indent`` after ``start``."""
    end = start + 1
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if not _is_content(line):
            continue
        # A sequence may sit at its key's own indent ("rollback:" then "- ..."): still the value.
        if _indent(line) < indent or (
            _indent(line) == indent and not line.lstrip().startswith("- ")
        ):
            break
        end = index + 1
    return end


def _find_key(lines: list[str], start: int, stop: int, indent: int, key: str) -> int | None:
    for index in range(start, stop):
        match = _KEY.match(lines[index])
        if match and len(match["indent"]) == indent and _unquote(match["key"]) == key:
            return index
    return None


def _field_indent(lines: list[str], start: int, stop: int) -> int | None:
    for index in range(start, stop):
        if _is_content(lines[index]):
            return _indent(lines[index])
    return None


def _flow(value: Any) -> str:
    """One value on one line (flow style), as YAML writes it."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    text = text.strip()
    return text[: -len("...")].rstrip() if text.endswith("\n...") else text


def _dump(key: str, value: Any, indent: int) -> list[str]:
    """``key: value`` at ``indent``; a list one item per line, each item in flow style."""
    pad = " " * indent
    if isinstance(value, list) and value:
        return [f"{pad}{key}:", *(f"{pad}  - {_flow(item)}" for item in value)]
    return [f"{pad}{key}: {_flow(value)}"]


def edit_route(
    text: str, route: str, changes: Mapping[str, Any], removals: tuple[str, ...] = ()
) -> str:
    """``text`` with ``routes.<route>``'s fields set to ``changes`` and ``removals`` dropped."""
    if "\t" in text:
        raise YamlEditError("the file contains tabs: it cannot be edited in place")
    lines = text.split("\n")
    routes_at = _find_key(lines, 0, len(lines), 0, "routes")
    if routes_at is None:
        raise YamlEditError("no top-level routes: key in block style")
    if _KEY.match(lines[routes_at])["rest"].split("#")[0].strip():  # type: ignore[index]
        raise YamlEditError(f"line {routes_at + 1}: routes: is in flow style")
    routes_end = _block_end(lines, routes_at, 0)
    route_indent = _field_indent(lines, routes_at + 1, routes_end)
    at = None if route_indent is None else _find_key(
        lines, routes_at + 1, routes_end, route_indent, route
    )  # fmt: skip
    if at is None or route_indent is None:
        raise YamlEditError(f"routes: no block-style entry {route!r}")
    head = _KEY.match(lines[at])
    assert head is not None
    if head["rest"].split("#")[0].strip():
        raise YamlEditError(
            f"line {at + 1}: route {route!r} is in flow style ({{...}}); write it as a block "
            "(one field per line) to let modelgate rollout edit it"
        )
    end = _block_end(lines, at, route_indent)
    block = lines[at + 1 : end]
    for offset, line in enumerate(block):
        if _ANCHOR.search(line.split("#")[0]):
            raise YamlEditError(
                f"line {at + 2 + offset}: the route uses YAML anchors or aliases: it cannot be "
                "edited in place"
            )
    indent = _field_indent(lines, at + 1, end)
    if indent is None:
        indent = route_indent + 2
    new_block = list(block)
    for key in removals:
        index = _find_key(new_block, 0, len(new_block), indent, key)
        if index is not None:
            stop = _block_end(new_block, index, indent)
            del new_block[index:stop]
    appended: list[str] = []
    for key, value in changes.items():
        index = _find_key(new_block, 0, len(new_block), indent, key)
        dumped = _dump(key, value, indent)
        if index is None:
            appended += dumped
            continue
        stop = _block_end(new_block, index, indent)
        match = _KEY.match(new_block[index])
        assert match is not None
        comment = ""
        if stop == index + 1 and len(dumped) == 1:
            comment = _trailing_comment(match["rest"])
        new_block[index:stop] = [dumped[0] + comment, *dumped[1:]]
    if appended:
        # After the route's last content line, before trailing blank or comment lines.
        last = max((i for i, line in enumerate(new_block) if _is_content(line)), default=-1)
        new_block[last + 1 : last + 1] = appended
    return "\n".join([*lines[: at + 1], *new_block, *lines[end:]])


def _trailing_comment(rest: str) -> str:
    """The `` # comment`` after a plain scalar value; none after a quoted one (a ``#`` there may
    belong to the string)."""
    value = rest.strip()
    if not value or value.startswith(("'", '"', "{", "[")):
        return ""
    match = re.search(r"(\s+#.*)$", rest)
    return match.group(1) if match else ""
