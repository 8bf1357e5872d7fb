"""Hook specifications other plugins (or a project's conftest.py) can implement.

Registered in ``pytest_addhooks``. Each hook is namespaced ``pytest_modelgate_*``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_modelgate.judge import Judge


@pytest.hookspec(firstresult=True)
def pytest_modelgate_judge(config: pytest.Config) -> Judge | None:
    """Return the judge that decides the verdict, or None to use the built-in one.

    The judge receives every test record of both arms and returns a ``Judgement``; see
    ``pytest_modelgate.judge.Judge``. Example, in ``conftest.py``::

        from pytest_modelgate.judge import FixedLimitJudge
        from pytest_modelgate.config import GateLimits

        def pytest_modelgate_judge(config):
            # A stricter cost limit for this repository only.
            return FixedLimitJudge(GateLimits(cost_per_call_max_ratio=1.05))
    """


def pytest_modelgate_verdict(config: pytest.Config, verdict: dict[str, Any]) -> None:
    """Inspect or amend the verdict just before it is validated and written.

    Called on the controller only, once per run, with the verdict as a JSON-compatible dict
    (the format in ``docs/verdict.md``). Changes must keep it valid against the shipped schema;
    a hook that breaks it turns the verdict into ``error``. A hook may make the verdict stricter
    (``pass`` -> ``inconclusive`` -> ``fail`` -> ``error``; the exit status and the rollout follow),
    never more lenient, and may not change ``kind``, ``complete``, ``run_id``, ``stable``,
    ``candidate``, ``mode`` or ``provenance``: either gives verdict ``error``. Example::

        def pytest_modelgate_verdict(config, verdict):
            # Attach the commit being gated, for the deploy step.
            verdict["reasons"].append(f"commit {os.environ.get('GITHUB_SHA', 'local')}")
    """
