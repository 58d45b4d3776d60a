"""Checkpoints: specs loaded safely (local, hub, built offline, ONNX export directories),
their heads and weight statistics, and intermediate-task training."""
