"""Lazy attributes for packages whose members import TensorFlow only when used."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_getattr(package: str, members: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` that imports `members[name]` (a module path) on first access."""

    def __getattr__(name: str):
        module = members.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
