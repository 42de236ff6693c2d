"""`python -m benchmarks` (`make bench`): every measurement in one run, against the real dev server."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory

from . import _report
from ._crypto import crypto_costs
from ._lifecycle import analyse, emergencies, latency_table, lifecycle
from ._retention import retention
from ._stack import ROOT, Stack, versioned

PHASES = ("crypto", "history", "lifecycle", "retention")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1")),
                   help="fraction of the full counts (500 lifecycles, 10,000 parked); env BENCH_SCALE")
    p.add_argument("--only", nargs="*", choices=PHASES, default=list(PHASES), help="phases to run")
    p.add_argument("--parked", type=int, default=int(os.environ.get("BENCH_PARKED", "0")) or None,
                   help="requests parked in the retention wait (default 10,000 x scale); env BENCH_PARKED")
    p.add_argument("--no-expiry", action="store_true", help="park only: measure memory, skip the release")
    p.add_argument("--concurrency", type=int, default=int(os.environ.get("BENCH_CONCURRENCY", "20")),
                   help="requests in flight at once")
    p.add_argument("--rounds", type=int, default=4, help="alternating rounds of share and baseline lifecycles")
    p.add_argument("--worker-env", action="append", default=[], metavar="VAR=VALUE",
                   help="worker tuning for both workers, e.g. SAFESHARE_MAX_CACHED_WORKFLOWS=500")
    p.add_argument("--profile", metavar="NAME", help="run the share worker under py-spy: results/profile-NAME.txt")
    p.add_argument("--output", default="latest.json", help="file name under benchmarks/results/")
    p.add_argument("--no-doc", action="store_true", help="do not rewrite the table in docs/PERFORMANCE.md")
    p.add_argument("--keep", action="store_true", help="keep the stack's home (temporal.db, logs) afterwards")
    return p.parse_args(argv)


def log(msg: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
    sys.stderr.flush()


def recorded_paths() -> dict[str, Any]:
    """Events and bytes per request for every path of the newest set in tests/histories (recorded
    on the time-skipping server by `make histories`; `deleted` keeps only its tombstone run)."""
    paths: dict[str, dict[str, Any]] = defaultdict(lambda: {"runs": 0, "events": 0, "bytes": 0, "run_events": []})
    newest = max((d for d in (ROOT / "tests" / "histories").iterdir() if d.is_dir()), key=lambda d: d.name)
    for f in sorted(newest.glob("*.json")):
        doc = json.loads(f.read_text())
        history = WorkflowHistory.from_json(doc["workflowId"], doc)
        p = paths[f.name.split(".run")[0]]
        p["runs"] += 1
        p["events"] += len(history.events)
        p["run_events"].append(len(history.events))
        p["bytes"] += sum(len(e.SerializeToString()) for e in history.events)
    return dict(paths)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"scale": args.scale, "machine": _report.machine(),
                               "worker_env": " ".join(args.worker_env), "history": {},
                               "key_cache_seconds": os.environ.get("SAFESHARE_KEY_CACHE_SECONDS", "default (0.25)")}
    if "crypto" in args.only:
        log("crypto")
        results["crypto"] = await crypto_costs(args.scale)
    if "history" in args.only:
        results["history"]["recorded_paths"] = recorded_paths()
    if not {"lifecycle", "retention"} & set(args.only):
        return results

    home = Path(tempfile.mkdtemp(prefix="safeshare-bench-"))
    stack = Stack(home / "var")
    tuning = dict(v.split("=", 1) for v in args.worker_env)
    profile = None
    try:
        await stack.start_server()
        profile = ROOT / "benchmarks" / "results" / f"profile-{args.profile}.raw" if args.profile else None
        # Both workers are versioned, as a deployed worker is (the share workflow declares its
        # versioning behaviour, which a real server refuses from an unversioned worker).
        share_pid = await stack.start_worker("share", stack.share_worker_argv(),
                                             {"SAFESHARE_TASK_QUEUE": "bench-share", **versioned("share"), **tuning},
                                             profile)
        await stack.make_current("share")
        log(f"stack up in {home}; share worker pid {share_pid}")
        if "lifecycle" in args.only:
            base_pid = await stack.start_worker("baseline", stack.baseline_worker_argv(),
                                                {"BENCH_TASK_QUEUE": "bench-baseline", **versioned("baseline"),
                                                 **tuning})
            await stack.make_current("baseline")
            n = max(8, int(500 * args.scale))
            log(f"lifecycle: {n} requests and {n} baseline workflows, alternating")
            life = await lifecycle(stack, n, args.concurrency, args.rounds, "bench-baseline",
                                   {"share": share_pid, "baseline": base_pid})
            ids = life.pop("ids")
            results["lifecycle"] = life
            log(f"lifecycle: {life['rate_per_s']} ratio {life['ratio']:.2f}")
            n_em = max(5, int(50 * args.scale))
            log(f"emergency: {n_em} requests, 2 in flight")
            em_ids = await emergencies(stack, n_em, 2)
            assert stack.raw is not None
            share_cost, share_times = await analyse(stack.raw, ids["share"], sample=20)
            base_cost, base_times = await analyse(stack.raw, ids["baseline"], sample=20)
            em_cost, em_times = await analyse(stack.raw, em_ids, sample=5)
            results["history"].update(lifecycle_share=share_cost, lifecycle_baseline=base_cost,
                                      emergency=em_cost)
            results["latency"] = {
                "share": latency_table(share_times), "baseline": latency_table(base_times),
                "emergency": {k: v for k, v in latency_table(em_times).items()
                              if k in ("submit_to_delivered", "submit_to_review_awaited")},
            }
            await stack.stop_worker("baseline")
        if "retention" in args.only:
            n = args.parked or max(20, int(10_000 * args.scale))
            log(f"retention: parking {n} requests")
            results["retention"] = await retention(stack, n, args.concurrency, share_pid, not args.no_expiry)
            log(f"retention: {results['retention']}")
    finally:
        await stack.stop()
        if args.profile and profile is not None and profile.exists():
            print(_report.summarise_profile(profile, profile.with_suffix(".txt")))
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    start = time.perf_counter()
    results = asyncio.run(run(args))
    results["seconds"] = time.perf_counter() - start
    path = _report.write(results, args.output)
    log(f"wrote {path}")
    if not args.no_doc:
        _report.update_doc(results)
    print(_report.table(results))


if __name__ == "__main__":
    main()
