"""Names a package re-exports but imports only on first use (PEP 562 module ``__getattr__``).

The top package, ``judge`` and ``gateway`` each keep a table of name -> submodule and a
two-line ``__getattr__`` that calls :func:`lazy_attribute`; their ``TYPE_CHECKING`` imports give
type checkers the real types. Importing a package then loads none of its submodules.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["lazy_attribute"]


def lazy_attribute(package: str, homes: Mapping[str, str], name: str) -> Any:
    """``name`` from the submodule of ``package`` that ``homes`` names (relative to it)."""
    home = homes.get(name)
    if home is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{package}.{home}"), name)
