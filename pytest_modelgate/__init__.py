"""pytest-modelgate: a pytest plugin and CI gate for safe model rollouts."""

from __future__ import annotations

__version__ = "0.1.0"
