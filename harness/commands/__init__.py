"""One module per subcommand (asv-style); each exposes ``register(subparsers)``."""

from __future__ import annotations

from types import ModuleType

from . import compare, fetch, languages, report, run, train

MODULES: tuple[ModuleType, ...] = (run, compare, report, languages, train, fetch)
