"""Serving under load: MLPerf LoadGen scenarios driving a dynamic batcher over a backend.

Closed-loop cases time one fixed batch after another; here requests arrive on LoadGen's clock
(Poisson arrivals in ``Server``, all at once in ``Offline``, one after another in
``SingleStream``), wait in a dynamic batcher, and are answered when their batch is done. The
chain: :mod:`.traffic` (real sentences per language, tokenized) → :mod:`.batcher` (which
requests form a batch, and when) → :mod:`.server` (the worker thread that runs batches) →
:mod:`.loadgen` (one LoadGen scenario and its parsed summary) → :mod:`.capacity` (the highest
QPS that meets a latency bound) → :mod:`.bench` (one record per checkpoint × backend ×
language × policy). :mod:`.queueing` holds the analytic M/D/1 answer the tests check against.
"""
