"""Pure statistics on timings: summaries and stop rules (``summary``), estimates whose
replicate is the process or the run (``hierarchy``), step changes over history."""
