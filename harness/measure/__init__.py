"""Measuring one call: clocks, memory, the machine's speed probe, GPU facts and kernels,
the roofline, and the checks that a backend's outputs are right (parity, accuracy)."""
