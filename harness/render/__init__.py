"""Rendering: the only place that formats numbers. Input is records; output is text/PNG."""
