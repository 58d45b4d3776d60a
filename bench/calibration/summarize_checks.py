"""The `harness check --candidate` trials of trials.sh, summarized.

    python bench/calibration/summarize_checks.py OUT

Reads OUT/times.tsv (label, seconds, exit code) and OUT/check-*.json; prints one line per
trial and, per candidate and backend, the verdicts, the ratio range, the median detectable
change and the processes the screen kept.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path


def main(out: Path) -> None:
    exits: dict[str, list[int]] = defaultdict(list)
    seconds: dict[str, list[int]] = defaultdict(list)
    for line in (out / "times.tsv").read_text().splitlines():
        label, secs, rc = line.split("\t")
        m = re.fullmatch(r"check-(\w+)-(.+)-(\d+)", label)
        if not m:
            continue
        print(f"{label}: exit {rc}, {secs} s")
        exits[m[2]].append(int(rc))
        seconds[m[2]].append(int(secs))
    print()
    for cand in sorted(exits):
        codes = exits[cand]
        print(
            f"{cand}: {len(codes)} trials, exit 0 in {codes.count(0)}, exit 1 in "
            f"{codes.count(1)}, other {len(codes) - codes.count(0) - codes.count(1)}; "
            f"{statistics.median(seconds[cand]):.0f} s median per trial"
        )
    rows: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
    for f in sorted(out.glob("check-*.json")):
        m = re.fullmatch(r"check-\w+-(.+)-(\d+)\.json", f.name)
        if not m:
            continue
        for r in json.loads(f.read_text())["results"]:
            rows[m[1], str(r["key"]).split("/")[0]].append(r)
    print()
    for (cand, backend), rs in sorted(rows.items()):
        verdicts = Counter(str(r["verdict"]) for r in rs)
        ratios = [float(r["ratio"]) for r in rs if r.get("ratio")]  # type: ignore[arg-type]
        mdes = [float(r["mde"]) for r in rs if r.get("mde")]  # type: ignore[arg-type]
        kept = [
            int(m[1]) for r in rs if (m := re.search(r"t over (\d+) processes", str(r["level"])))
        ]
        print(
            f"{cand} {backend}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items()))
            + (f"; ratio {min(ratios):.3f}–{max(ratios):.3f}" if ratios else "")
            + (f"; detects ≥ {100 * statistics.median(mdes):.1f} % (median)" if mdes else "")
            + (f"; processes kept {min(kept)}–{max(kept)}" if kept else "")
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
