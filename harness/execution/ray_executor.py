"""Run a sweep's groups as Ray tasks: one fresh worker process per (checkpoint, backend,
dtype) group, on whichever node has room, records streamed back to the driver.

The driver is the local launcher's twin: it owns the run directory, appends every record the
moment it arrives (so ``--resume``, ``report``, ``compare`` and ``check`` see the same run as
a local sweep would write), and turns a worker or node that dies mid-group into an ``error``
record for the case it was on, naming the node, before resubmitting the group's other cases.

Measurement purity: by default every group also requests one unit of the custom per-node
resource ``harness_node``, so no two timed groups share a node (a local instance gets one
unit; cluster nodes are started with ``--resources='{"harness_node": 1}'``). ``share_nodes``
drops that request, and groups then share nodes as their CPU and GPU requests allow.

Each group runs in its own worker process (``max_calls=1``): nothing a previous group loaded
or tuned is left in it, as with the local launcher's spawned workers.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.execution.options import Event, RunOptions
from harness.execution.runner import run_group
from harness.execution.worker_policy import after_worker_death, blamed_case
from harness.records.results import Record
from harness.records.store import RunStore
from harness.records.types import HostInfo
from harness.spec.sweep import Case

__all__ = [
    "NODE_RESOURCE",
    "RayTarget",
    "connect",
    "node_facts",
    "parse_executor",
    "ray_unavailable",
    "run_groups_on_ray",
]

NODE_RESOURCE = "harness_node"
INSTALL_HINT = "pip install 'xlmr-harness[ray]'"


def ray_unavailable() -> str | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        return f"Ray is not installed: {INSTALL_HINT}"
    return None


@dataclass(frozen=True)
class RayTarget:
    """Where to run: ``address`` ``None`` starts a local instance (or joins ``RAY_ADDRESS``)."""

    address: str | None = None
    share_nodes: bool = False
    retries: int = 0


def parse_executor(text: str) -> RayTarget | None:
    """``local`` → ``None``; ``ray`` → local instance or ``$RAY_ADDRESS``; ``ray://HOST:PORT``."""
    if text == "local":
        return None
    if text == "ray":
        return RayTarget(address=os.environ.get("RAY_ADDRESS") or None)
    if text.startswith("ray://"):
        return RayTarget(address=text)
    raise HarnessError(f"--executor must be local, ray or ray://HOST:PORT, not {text!r}")


def connect(target: RayTarget) -> Any:
    """Start or join Ray; check the cluster can honour the purity rule. Returns the module."""
    why = ray_unavailable()
    if why is not None:
        raise HarnessError(why)
    import ray

    if not ray.is_initialized():
        if target.address is None:
            ray.init(
                resources={NODE_RESOURCE: 1},
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            try:
                ray.init(address=target.address, log_to_driver=False, configure_logging=False)
            except Exception as exc:  # a wrong address, a cluster that is down
                raise HarnessError(
                    f"cannot reach the Ray cluster at {target.address}: {exc}"
                ) from None
    if not target.share_nodes and NODE_RESOURCE not in ray.cluster_resources():  # type: ignore[no-untyped-call]
        raise HarnessError(
            f"the Ray cluster's nodes offer no {NODE_RESOURCE!r} resource, so timed groups "
            f"could share a node: start each node with --resources='{{\"{NODE_RESOURCE}\": 1}}', "
            "or pass --ray-share-nodes"
        )
    return ray


def node_facts() -> HostInfo:
    """What a record says about where it was measured: node, process, hardware, versions."""
    from harness.records.env import COMPARABLE_KEYS, collect_env, hardware_class

    env = collect_env()
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
    except Exception:
        node_id = None
    return {
        "executor": "ray",
        "hostname": socket.gethostname(),
        "node_id": node_id,
        "pid": os.getpid(),
        "hardware": hardware_class(env),
        "env": {k: env.get(k) for k in (*COMPARABLE_KEYS, "gpu_name", "logical_cpus")},
    }


class _QueueSink:
    """The worker's stand-in for the run store: records go back to the driver instead."""

    def __init__(self, q: queue.Queue[Any], host: HostInfo) -> None:
        self.q, self.host = q, host

    def append(self, record: Record) -> None:
        record.host = self.host
        self.q.put(("record", record.to_dict()))


def _group_task(cases: list[dict[str, Any]], opts: RunOptions) -> Iterator[tuple[str, Any]]:
    """The Ray task: measure one group, yielding ``node``, ``start`` and ``record`` events."""
    from harness.quiet import quiet_libraries

    quiet_libraries()
    host = node_facts()
    yield ("node", host)
    q: queue.Queue[Any] = queue.Queue()

    def emit(event: Event) -> None:
        if event[0] == "start":
            q.put(event)

    def work() -> None:
        try:
            run_group([Case.from_dict(c) for c in cases], _QueueSink(q, host), opts, emit)
        except BaseException as exc:
            q.put(("crash", f"{type(exc).__name__}: {exc}"))
        finally:
            q.put(None)

    thread = threading.Thread(target=work, name="harness-group", daemon=True)
    thread.start()
    while (item := q.get()) is not None:
        yield item
    thread.join()


@dataclass
class _Running:
    cases: list[Case]
    started: float
    node: dict[str, Any] = field(default_factory=dict)
    current: str | None = None
    done: set[str] = field(default_factory=set)


def _where(node: dict[str, Any]) -> str:
    if not node:
        return "before it reported its node"
    return (
        f"on node {node.get('hostname')} ({str(node.get('node_id'))[:12]}, pid {node.get('pid')})"
    )


def run_groups_on_ray(
    groups: list[list[Case]],
    store: RunStore,
    opts: RunOptions,
    emit: Callable[[Event], None],
    target: RayTarget,
) -> None:
    """Measure every group as a Ray task; returns when all are recorded."""
    ray = connect(target)
    task = ray.remote(max_calls=1, max_retries=0)(_group_task)
    running: dict[Any, _Running] = {}
    attempts: dict[str, int] = {}

    def submit(cases: list[Case]) -> None:
        first = cases[0]
        resources = {} if target.share_nodes else {NODE_RESOURCE: 1}
        gen = task.options(
            num_cpus=first.threads,
            num_gpus=1 if first.device == "cuda" else 0,
            resources=resources,
        ).remote([c.to_dict() for c in cases], opts)
        running[gen] = _Running(cases, time.monotonic())

    def failed(state: _Running, reason: str) -> None:
        remaining = [c for c in state.cases if c.case_id not in state.done]
        if not remaining:
            return
        blamed = blamed_case(remaining, state.current)
        attempts[blamed.case_id] = attempts.get(blamed.case_id, 0) + 1
        if attempts[blamed.case_id] <= target.retries:
            submit(remaining)  # the retry policy: the whole rest of the group, fresh worker
            return
        message = f"worker died {_where(state.node)}: {reason}"
        rest = after_worker_death(remaining, state.current, message, store, emit, host=state.node)
        if rest:
            submit(rest)

    for group in groups:
        submit(group)
    try:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            if not ready:
                for gen, state in list(running.items()):
                    if (
                        opts.group_timeout_s
                        and time.monotonic() - state.started > opts.group_timeout_s
                    ):
                        ray.cancel(gen, force=True)
                        del running[gen]
                        failed(state, f"timed out after {opts.group_timeout_s:g} s")
                continue
            gen = ready[0]
            state = running[gen]
            try:
                kind, payload = ray.get(next(gen))
            except StopIteration:
                del running[gen]
                failed(state, "the task ended before its cases were recorded")
                continue
            except Exception as exc:  # the worker process or its node died
                del running[gen]
                failed(state, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}")
                continue
            if kind == "node":
                state.node = payload
                emit(("node", payload))
            elif kind == "start":
                state.current = payload
                emit(("start", payload))
            elif kind == "record":
                rec = Record.from_dict(payload)
                store.append(rec)
                state.done.add(rec.case_id)
                emit(("done", rec))
            elif kind == "crash":
                ray.cancel(gen, force=True)
                del running[gen]
                failed(state, payload)
    finally:  # interrupted (Ctrl-C, SIGTERM): nothing keeps measuring on the cluster
        for gen in list(running):
            with contextlib.suppress(Exception):
                ray.cancel(gen, force=True)
