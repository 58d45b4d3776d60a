"""What is measured, as frozen specs: checkpoints and measurement (``config``), sweeps
expanded into explicit cases before anything runs (``sweep``), the metrics a gate knows."""
