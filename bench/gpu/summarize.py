"""The GPU headline table from a folder of `bench/gpu/run.sh` results.

Reads every run directory under DIR and the bare loop's JSON (bare-before.json, and
bare-after.json when present), and prints Markdown: p50 per backend variant and cell, kernels
per call and their summed device time, the harness/bare-loop ratio (each backend against
the bare loop's same program: graph replay for CUDA-graph variants, its own trace and
compile where it timed them, its eager loop otherwise), and the two targets as ratios.

    python3 bench/gpu/summarize.py reports/gpu/h200-2026-11-26
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.records.results import Record, load_run
from harness.records.types import case_options
from harness.render.gpu import target_lines
from harness.render.markdown import md_table


def _variant(r: Record) -> str:
    opts = case_options(r.case)
    opts.pop("dynamic", None)
    if opts.get("mode") == "default":
        opts.pop("mode")
    tail = ", ".join(f"{k}={v}" for k, v in sorted(opts.items()))
    return r.case["backend"] + (f" ({tail})" if tail else "")


def _reference(r: Record, cell: dict[str, float]) -> tuple[str, float | None]:
    """The bare loop's figure for the same program: its graph replay for ``cuda-graph``, its
    own trace / compile where it timed them (else its eager loop), its eager loop otherwise."""
    backend = r.case["backend"]
    key = {"cuda-graph": "cuda_graph", "torchscript": "torchscript", "compile": "compile"}.get(
        backend, "eager"
    )
    if f"{key}_ms" not in cell:
        key = "eager"
    return key.replace("_", "-"), cell.get(f"{key}_ms")


def _bare(folder: Path) -> dict[tuple[int, int], dict[str, float]]:
    cells: dict[tuple[int, int], dict[str, float]] = {}
    for name in ("bare-before.json", "bare-after.json"):
        path = folder / name
        if not path.is_file():
            continue
        for row in json.loads(path.read_text())["results"]:
            cell = cells.setdefault((row["batch"], row["seq"]), {})
            for key, value in row.items():
                if key.endswith("_ms"):  # the run before the harness is the reference
                    cell.setdefault(key, value)
    return cells


def main(folder: Path) -> None:
    records: list[Record] = []
    machines = set()
    for run_json in sorted(folder.glob("*/run.json")):
        run = load_run(run_json.parent)
        machines.add((run.meta.env.get("gpu_name"), run.meta.env.get("hostname")))
        records += [r for r in run.latest() if r.status == "ok"]
    bare = _bare(folder)
    rows = []
    for r in sorted(records, key=lambda r: (r.case["batch_size"], r.case["seq_len"], _variant(r))):
        cell = (r.case["batch_size"], r.case["seq_len"])
        p50_ms = r.summary["p50"] * 1e3
        ref_name, ref = _reference(r, bare.get(cell, {}))
        kernels = r.gpu.get("kernels", {})
        comp = r.compute
        rows.append(
            {
                "cell": f"b{cell[0]} × {cell[1]}",
                "variant": _variant(r),
                "p50 ms": f"{p50_ms:.3f}",
                "±CI": f"{100 * r.summary['rel_ci']:.1f}%",
                "kernels/call": str(kernels.get("per_call", "–")),
                "kernel time ms": f"{kernels['device_time_s'] * 1e3:.3f}"
                if "device_time_s" in kernels
                else "–",
                "TFLOP/s": f"{comp.get('achieved_tflops', 0):.0f}",
                "% matmul peak": f"{100 * comp['share_of_measured_matmul_peak']:.0f}%"
                if "share_of_measured_matmul_peak" in comp
                else "–",
                "bare loop ms": f"{ref:.3f} ({ref_name})" if ref else "–",
                "harness / bare": f"{p50_ms / ref:.3f}" if ref else "–",
            }
        )
    print(f"GPU: {', '.join(sorted(str(m[0]) for m in machines))}; {len(machines)} machine(s)\n")
    print(md_table(rows))
    print("\n".join(target_lines(records)))
    host = folder / "host-overhead.json"
    if host.is_file():
        data = json.loads(host.read_text())
        print(f"\nHarness eager vs the bare model in one process ({data['statistic']}, ms):\n")
        print(
            md_table(
                [
                    {
                        "condition": r["condition"],
                        "cell": f"b{r['batch']} × {r['seq']}",
                        "threads": str(r["threads"]),
                        "bare": f"{r['bare_ms']:.3f}",
                        "harness": f"{r['harness_ms']:.3f}",
                        "harness / bare": f"{r['harness_over_bare']:.3f}",
                    }
                    for r in data["rows"]
                ]
            )
        )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python3 bench/gpu/summarize.py DIR")
    main(Path(sys.argv[1]))
