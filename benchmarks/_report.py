"""benchmarks/results/latest.json and the figures table in docs/PERFORMANCE.md."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import Counter
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ._stack import BIN, ROOT

NA = "-"
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- bench:begin (written by `make bench`) -->", "<!-- bench:end -->"


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    temporal = subprocess.run([str(BIN / "temporal"), "--version"], capture_output=True, text=True,
                              check=False).stdout.strip()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607
                            capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem / 2**20, 1),
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "temporalio": version("temporalio"), "temporal_cli": temporal, "cryptography": version("cryptography"),
        "commit": commit, "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write(results: dict[str, Any], name: str = "latest.json") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def _f(x: float | None, digits: int = 2) -> str:
    return NA if x is None else f"{x:.{digits}f}"


def _ms(x: float | None) -> str:
    return NA if x is None else f"{x * 1000:.0f}"


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"Run {m['when']} at {m['commit']} (scale {r['scale']}): {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gb']} GB; {m['os']}; Python {m['python']}, temporalio {m['temporalio']}, "
        f"{m['temporal_cli']}, cryptography {m['cryptography']}. Worker options: "
        f"{r.get('worker_env') or 'as shipped (workers/_worker.py)'}; history-key cache "
        f"{r.get('key_cache_seconds', 'default')} s.",
        "",
        "| # | figure | measured | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(n: str, what: str, value: str, base: str, ratio: str, target: str, met: bool | None) -> None:
        lines.append(f"| {n} | {what} | {value} | {base} | {ratio} | {target} | "
                     f"{NA if met is None else ('yes' if met else '**no**')} |")

    life = r.get("lifecycle")
    if life:
        rate, base = life["rate_per_s"]["share"], life["rate_per_s"]["baseline"]
        row("1", f"lifecycle throughput ({life['requests']['share']} requests, {life['concurrency']} in flight)",
            f"{_f(rate)} req/s", f"{_f(base)} wf/s", _f(life["ratio"]), "≥ 0.85", life["ratio"] >= 0.85)
        cpu = life.get("worker_cpu_ms_per_request")
        if cpu:
            row("1", "worker CPU per lifecycle", f"{_f(cpu['share'], 0)} ms", f"{_f(cpu['baseline'], 0)} ms",
                _f(cpu["share"] / cpu["baseline"]), "≤ 2", cpu["share"] / cpu["baseline"] <= 2)
    lat = r.get("latency", {})
    for stage, p in lat.get("share", {}).items():
        b = lat.get("baseline", {}).get(stage, {})
        ratio = _f(p["p95"] / b["p95"]) if b.get("p95") else NA
        row("2", f"{stage.replace('_', ' ')} p50 / p95 / p99 (ms)",
            f"{_ms(p['p50'])} / {_ms(p['p95'])} / {_ms(p['p99'])}",
            f"{_ms(b.get('p50'))} / {_ms(b.get('p95'))} / {_ms(b.get('p99'))}" if b else NA, ratio, "", None)
    em = lat.get("emergency", {}).get("submit_to_delivered")
    if em:
        row("2", f"emergency submit → delivered bundle p50 / p95 / p99 (ms), {em['n']} requests",
            f"{_ms(em['p50'])} / {_ms(em['p95'])} / {_ms(em['p99'])}", NA, NA, "p95 < 1000 ms", em["p95"] < 1)
    hist = r.get("history", {})
    for path, h in hist.get("recorded_paths", {}).items():
        runs = " + ".join(map(str, h.get("run_events", []))) if h["runs"] > 1 else ""
        row("3", f"history, path {path} ({h['runs']} runs{': ' + runs if runs else ''})",
            f"{h['events']} events, {h['bytes'] / 1024:.1f} KB", "", "", "", None)
    # The target is a routine request's: intake to deletion, as the lifecycle rounds drive it. A
    # request parked for years adds a yearly run (recorded above as the routine path's later runs).
    for kind in ("share", "baseline"):
        h = hist.get(f"lifecycle_{kind}")
        if h:
            share = kind == "share"
            row("3", f"history, {'routine request, intake to deletion' if share else 'baseline workflow'} "
                f"on the dev server ({h['runs']} runs)", f"{h['events']:.0f} events, {h['bytes'] / 1024:.1f} KB",
                "", "", "< 100 events" if share else "", h["events"] < 100 if share else None)
    ret = r.get("retention")
    if ret:
        row("4", f"park {ret['parked']} requests in the retention wait", f"{_f(ret['park_seconds'], 0)} s "
            f"({_f(ret['park_rate_per_s'])}/s)", "", "", "", None)
        row("4", f"worker resident memory, {ret['parked']} parked", f"{_f(ret['worker_rss_parked_mb'], 0)} MB "
            f"(peak {_f(ret['worker_rss_peak_mb'], 0)} MB)", f"{_f(ret['worker_rss_before_mb'], 0)} MB before", "",
            "< 300 MB", ret["worker_rss_parked_mb"] < 300)
        row("4", "dev server database growth", f"{_f(ret['db_parked_mb'] - ret['db_before_mb'], 1)} MB "
            f"({_f(ret['db_growth_per_request_kb'], 1)} KB/request)", "", "", "", None)
        curve = ret.get("worker_rss_curve_mb") or []
        if len(curve) >= 3:
            marks = [curve[len(curve) * k // 4] for k in range(1, 4)] + [curve[-1]]
            row("4", "worker resident memory as they park (parked: MB)",
                ", ".join(f"{n}: {mb:.0f}" for n, mb in marks), "", "", "", None)
        if "deletions_per_s" in ret:
            row("4", "all expire together: deletions", f"{_f(ret['deletions_per_s'])}/s "
                f"({_f(ret['delete_seconds'], 0)} s; releases sent in {_f(ret['release_seconds'], 0)} s)",
                "", "", "", None)
    cr = r.get("crypto")
    if cr:
        for size, c in cr["bundle_seal_open"].items():
            target = "<= 1.5x" if size == "1MB" else ""
            row("5", f"bundle seal + open, {size}", f"{_f(c['subject_ms'], 3)} ms",
                f"{_f(c['baseline_ms'], 3)} ms raw AES-256-GCM", f"{_f(c['ratio'])}x", target,
                c["ratio"] <= 1.5 if target else None)
        c = cr["codec_round_trip"]
        row("5", f"codec encode + decode, one {c['payload_bytes']} B payload", f"{_f(c['subject_ms'], 3)} ms",
            f"{_f(c['baseline_ms'], 3)} ms raw AES-256-GCM", f"{_f(c['ratio'], 1)}x", "", None)
        c = cr.get("codec_round_trip_uncached")
        if c:
            row("5", "the same, without the key cache (before the fix)", f"{_f(c['subject_ms'], 3)} ms",
                f"{_f(c['baseline_ms'], 3)} ms raw AES-256-GCM", f"{_f(c['ratio'], 1)}x", "", None)
        c = cr["decision_sign_verify"]
        row("5", "decision sign + verify", f"{_f(c['subject_ms'], 3)} ms", f"{_f(c['baseline_ms'], 3)} ms raw Ed25519",
            f"{_f(c['ratio'], 1)}x", "", None)
    return "\n".join(lines)


def update_doc(r: dict[str, Any]) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{table(r)}\n{END}{tail}")


def _frame(f: str) -> str:
    """`name (path/to/file.py:123)` → `name (file.py)`."""
    if " (" not in f:
        return f
    name, _, where = f.partition(" (")
    return f"{name} ({where.split(':')[0].split('/')[-1]})"


def summarise_profile(raw: Path, out: Path, top: int = 40) -> str:
    """py-spy's collapsed stacks → the functions with the most samples, inclusive and own, of the
    worker while busy: its event loop (codec, activities, the sandbox's instance creation) and the
    SDK's workflow-task threads, which run each activation's workflow code. Idle waits (the loop's
    select, a pool thread waiting for work) are left out."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    where: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or "select (selectors.py" in stack:
            continue
        frames = [_frame(f) for f in stack.split(";")]
        if frames[-1].startswith(("_worker (thread.py)", "_connection_worker_thread (core.py)")):
            continue  # a pool or aiosqlite thread waiting for work
        if "run_until_complete" in stack:
            part = "event loop"
        elif "_WorkItem.run (thread.py)" in frames and any(f.startswith("_Instance.activate") for f in frames):
            part = "workflow-task threads"
        elif "_WorkItem.run (thread.py)" in frames or "_connection_worker_thread (core.py)" in frames:
            part = "other threads (sqlite, executors)"
        else:
            continue  # start-up and shutdown
        n = int(count)
        total += n
        where[part] += n
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    parts = [f"{total} samples of the busy worker: "
             + ", ".join(f"{k} {n / total:.1%}" for k, n in where.most_common()), "", "inclusive:"]
    parts += [f"{n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    parts += ["", "own:"] + [f"{n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    text = "\n".join(parts) + "\n"
    out.write_text(text)
    return text
