"""One module per subcommand (asv-style); each exposes ``register(subparsers)``."""

from __future__ import annotations

from types import ModuleType

from harness.commands import (
    cache,
    check,
    compare,
    export,
    fetch,
    history,
    languages,
    report,
    run,
    serve,
    train,
)

MODULES: tuple[ModuleType, ...] = (
    run,
    compare,
    check,
    serve,
    report,
    languages,
    train,
    history,
    export,
    fetch,
    cache,
)
