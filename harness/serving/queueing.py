"""Exact M/D/1 latency percentiles: the analytic reference a capacity search is checked against.

Poisson arrivals at rate ``lam`` served one at a time in ``service_s`` seconds each: the
waiting time's distribution is Erlang's (Crommelin's) closed form

    P(W <= t) = (1 - rho) * sum_{k=0}^{floor(t/D)} (lam (kD - t))^k / k! * exp(-lam (kD - t))

with ``rho = lam * D``; a request's latency is its wait plus its own service, ``W + D``.
"""

from __future__ import annotations

import math

__all__ = ["md1_capacity", "md1_latency_cdf"]


def md1_latency_cdf(lam: float, service_s: float, latency_s: float) -> float:
    """P(latency <= ``latency_s``) in an M/D/1 queue (0 when the queue is unstable)."""
    rho = lam * service_s
    if rho >= 1:
        return 0.0
    t = latency_s - service_s
    if t < 0:
        return 0.0
    total = 0.0
    for k in range(math.floor(t / service_s) + 1):
        x = lam * (k * service_s - t)  # <= 0
        total += x**k / math.factorial(k) * math.exp(-x)
    return min(1.0, max(0.0, (1 - rho) * total))


def md1_capacity(service_s: float, bound_s: float, percentile: float = 0.99) -> float:
    """The highest arrival rate whose ``percentile`` latency is within ``bound_s``."""
    if bound_s < service_s:
        return 0.0
    lo, hi = 0.0, 1.0 / service_s
    for _ in range(60):
        mid = (lo + hi) / 2
        if md1_latency_cdf(mid, service_s, bound_s) >= percentile:
            lo = mid
        else:
            hi = mid
    return lo
