"""Versioned records and run directories: the record's parts (``types``), records and runs
(``results``), resumable append-only storage (``store``), the published JSON Schema, the
environment a run carries, exports and history."""
