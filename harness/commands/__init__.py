"""One module per subcommand (asv-style); each exposes ``register(subparsers)``."""

from __future__ import annotations

from types import ModuleType

from . import fetch, languages, report, run

MODULES: tuple[ModuleType, ...] = (run, report, languages, fetch)
