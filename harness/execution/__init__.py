"""Running cases: the checked plan, the runner of one prepared group, the launcher's worker
processes (and Ray), appending records as each case finishes."""
