"""Comparing checkpoints: one package, one concept per module.

* ``decide``     — pair records, estimate each effect (via :mod:`harness.stats.hierarchy`), verdicts;
* ``interleave`` — time several arms side by side in rounds of random order, in one process;
* ``arms``       — library entry points: run the arms (in fresh processes), or two finished runs;
* ``noise``      — the A/A noise floor;
* ``report``     — Markdown/HTML/JSON of a comparison run.
"""
