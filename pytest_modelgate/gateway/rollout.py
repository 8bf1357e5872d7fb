"""``modelgate rollout``: apply a verdict's rollout plan to one route of modelgate.yaml.

Pure apart from reading and writing the two files: :func:`planned_route` computes the new route
from the verdict and the old route; :func:`apply_rollout` refuses what ``modelgate check`` would
refuse (and a verdict judged against another stable model than the route's), validates the new
file like any modelgate.yaml, prints the diff and writes it atomically.

What is applied: ``candidate`` (the verdict's candidate), the first phase of ``rollout.plan``
(``canary`` -> ``canary_percent``; ``shadow`` -> ``canary_percent: 0`` and the route's
``shadow_percent``, 100 when it had none) and ``rollout.rollback_triggers`` as ``rollback:``
(each with the phase's ``min_requests``), and a canary plan's steps as ``steps:`` (the canary
monitor promotes through them). Only the route's changed fields are edited, in place:
comments and every other line are kept (``gateway/yamledit.py``), and the diff printed is the
file's own.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

__all__ = ["RolloutRefused", "apply_rollout", "planned_route"]


class RolloutRefused(Exception):
    """The rollout cannot be applied; ``exit_code`` follows ``modelgate check``'s meanings."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def planned_route(verdict: dict[str, Any], route: dict[str, Any]) -> dict[str, Any]:
    """The route after the verdict's first rollout step (``route`` is not changed)."""
    rollout = verdict.get("rollout") or {}
    plan = rollout.get("plan") or []
    if not plan:
        raise RolloutRefused("the verdict's rollout plan is empty: nothing to apply", 1)
    first = plan[0]
    new = dict(route)
    new["candidate"] = verdict["candidate"]["model"]
    if first["phase"] == "canary":
        new["canary_percent"] = first["traffic_percent"]
    else:
        new["canary_percent"] = 0
        new["shadow_percent"] = route.get("shadow_percent") or 100
    new["rollback"] = [
        {**trigger, "min_requests": int(first["min_requests"])}
        for trigger in rollout.get("rollback_triggers") or []
    ]
    canary = [step for step in plan if step["phase"] == "canary"]
    new.pop("steps", None)
    if first["phase"] == "canary" and new["rollback"] and len(canary) > 1:
        # The later steps: the canary monitor promotes through them (non-inferiority shown).
        new["steps"] = [
            {"percent": step["traffic_percent"], "min_requests": int(step["min_requests"])}
            for step in canary
        ]
    return new


def apply_rollout(
    verdict_path: Path,
    route_name: str,
    config_path: Path,
    *,
    allow_inconclusive: bool = False,
    write: bool = True,
    echo: Callable[[str], object] = print,
) -> None:
    """Apply the verdict at ``verdict_path`` to ``routes.<route_name>`` of ``config_path``."""
    from pytest_modelgate.calls.catalog import load_catalog
    from pytest_modelgate.config.settings import check_config, load_config
    from pytest_modelgate.config.yamlfile import read_yaml_file
    from pytest_modelgate.errors import ConfigError
    from pytest_modelgate.verdict.check import Expectations, check_file, load_verdict_file

    try:
        config = load_config(config_path)
    except (ConfigError, OSError) as exc:
        raise RolloutRefused(str(exc), 2) from exc
    route = config.routes.get(route_name)
    if route is None:
        known = ", ".join(sorted(config.routes)) or "none"
        raise RolloutRefused(f"{config_path}: routes: no route {route_name!r} (routes: {known})", 2)
    # The same refusals as `modelgate check`, plus: the verdict compared against this route's
    # stable model (a verdict against another baseline says nothing about this route).
    decision = check_file(
        verdict_path, Expectations(allow_inconclusive=allow_inconclusive, stable=route.stable)
    )
    if not decision.go:
        raise RolloutRefused(
            decision.line.replace("modelgate check:", "modelgate rollout:"), decision.exit_code
        )
    verdict = load_verdict_file(verdict_path)
    data = read_yaml_file(config_path, ConfigError)
    old_route = data["routes"][route_name]
    new_route = planned_route(verdict, old_route)
    old_text = config_path.read_text(encoding="utf-8")
    new_text = _edited(old_text, data, route_name, old_route, new_route, config_path)
    directory = config_path.resolve().parent
    fd, temp_name = tempfile.mkstemp(prefix=".modelgate-rollout-", suffix=".yaml", dir=directory)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new_text)
        # The new file must load like any modelgate.yaml before it replaces the old one.
        try:
            check_config(load_config(temp), load_catalog())
        except ConfigError as exc:
            raise RolloutRefused(f"the new {config_path} would be invalid: {exc}", 3) from exc
        # The file's own diff: what changes on disk, comments and all.
        diff = difflib.unified_diff(
            old_text.splitlines(),
            new_text.splitlines(),
            f"{config_path} (before)",
            f"{config_path} (after)",
            lineterm="",
        )
        for line in diff:
            echo(line)
        if write and new_text != old_text:
            os.replace(temp, config_path)
            echo(f"modelgate rollout: wrote {config_path}")
        elif not write:
            echo("modelgate rollout: --dry-run: nothing written")
    finally:
        temp.unlink(missing_ok=True)


# The fields a rollout sets; the others of the route are left as they are.
_ROLLOUT_FIELDS = ("candidate", "canary_percent", "shadow_percent", "rollback", "steps")


def _edited(
    old_text: str,
    data: dict[str, Any],
    route_name: str,
    old_route: dict[str, Any],
    new_route: dict[str, Any],
    config_path: Path,
) -> str:
    """The file with the route's changed fields edited in place (comments kept); refused when
    the edit would not parse back to exactly the planned route and the rest unchanged."""
    from pytest_modelgate.gateway.yamledit import YamlEditError, edit_route

    changes = {
        key: new_route[key]
        for key in _ROLLOUT_FIELDS
        if key in new_route and new_route.get(key) != old_route.get(key)
    }
    removals = tuple(key for key in _ROLLOUT_FIELDS if key in old_route and key not in new_route)
    try:
        new_text = edit_route(old_text, route_name, changes, removals)
    except YamlEditError as exc:
        raise RolloutRefused(f"{config_path}: cannot edit routes.{route_name}: {exc}", 3) from exc
    expected = {**data, "routes": {**data["routes"], route_name: new_route}}
    if yaml.safe_load(new_text) != expected:
        raise RolloutRefused(
            f"{config_path}: editing routes.{route_name} in place did not give the planned "
            "route (an unusual layout); nothing written",
            3,
        )
    return new_text
