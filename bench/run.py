#!/usr/bin/env python3
"""Benchmark pyruntime against runc and crun on the same bundles, in one process.

    /opt/pyruntime/venv/bin/python bench/run.py [--rounds N] [--only lifecycle,exec,...]
        [--runtimes pyruntime,runc,crun] [--json PATH]

Benchmarks (--only): lifecycle, seq, parallel, exec, memory, imports, commands, floor.
Runtimes alternate round by round; a runtime failing a round is reported with its error.
Prints a table, writes JSON (default bench/results/latest.json); bench/report.py turns that
JSON into Markdown. Needs root. Everything (containers, state dirs, bundles, the benchmark's
cgroup parent /pyruntime-bench-<rand> in every hierarchy) is removed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchmarks  # noqa: E402
import report  # noqa: E402
from harness import DEFAULT_EXES, Harness, become_subreaper, cgroup_mode, spawn  # noqa: E402

ALL_RUNTIMES = ["pyruntime", "runc", "crun"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30,
                    help="rounds for lifecycle/run, exec, state/list/kill (default 30)")
    ap.add_argument("--only", default=",".join(benchmarks.BENCHMARKS),
                    help="comma-separated subset of: " + ", ".join(benchmarks.BENCHMARKS))
    ap.add_argument("--runtimes", default=",".join(ALL_RUNTIMES), help="default pyruntime,runc,crun")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "latest.json"),
                    help="where to write the results (default bench/results/latest.json)")
    ap.add_argument("--warmup", type=int, default=1, help="discarded leading rounds (default 1)")
    ap.add_argument("--gap", type=float, default=0.0,
                    help="idle ms before each timed lifecycle/run/exec (default 0: back to back). "
                         "~100 makes every command pay its own cgroup-migration grace period, as a "
                         "single start on a quiet host does (see bench/README.md)")
    ap.add_argument("--seq-count", type=int, default=100, help="runs per sequential batch (100)")
    ap.add_argument("--seq-reps", type=int, default=3, help="sequential batches per runtime (3)")
    ap.add_argument("--par-width", type=int, default=20, help="lifecycles in parallel (20)")
    ap.add_argument("--par-reps", type=int, default=3, help="parallel repetitions (3)")
    ap.add_argument("--mem-rounds", type=int, default=5, help="memory rounds (5)")
    ap.add_argument("--import-reps", type=int, default=3, help="runs per command for imports (3)")
    ap.add_argument("--kill-rounds", type=int, default=None,
                    help="kill rounds, each on a fresh container (default: min(--rounds, 20))")
    ap.add_argument("--max-failures", type=int, default=3,
                    help="drop a runtime from a series after this many failed rounds in a row (3)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-command timeout, s (30)")
    ap.add_argument("--exe", action="append", default=[], metavar="NAME=PATH",
                    help="runtime executable override, e.g. crun=/usr/bin/crun (repeatable); "
                         "defaults: " + ", ".join(f"{k}={v}" for k, v in DEFAULT_EXES.items()))
    ap.add_argument("--rootfs", help="use this busybox rootfs instead of building one")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    ap.add_argument("--workdir", help="parent directory for the temporary work directory")
    a = ap.parse_args(argv)
    a.only = [x.strip() for x in a.only.split(",") if x.strip()]
    a.runtimes = [x.strip() for x in a.runtimes.split(",") if x.strip()]
    bad = [x for x in a.only if x not in benchmarks.BENCHMARKS]
    if bad:
        ap.error(f"unknown benchmark(s) {bad}; choose from {list(benchmarks.BENCHMARKS)}")
    if not a.runtimes or len(set(a.runtimes)) != len(a.runtimes):
        ap.error("--runtimes: give distinct names")
    a.exes = {}
    for item in a.exe:
        name, sep, path = item.partition("=")
        if not sep:
            ap.error(f"--exe {item!r}: expected NAME=PATH")
        a.exes[name] = path
    for n in a.runtimes:
        if n not in DEFAULT_EXES and n not in a.exes:
            ap.error(f"unknown runtime {n!r}: give its executable with --exe {n}=PATH")
    return a


def first_line(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    lines = (p.stdout or p.stderr).strip().splitlines()
    if p.returncode != 0 or not lines:
        return f"unavailable (exit {p.returncode})"
    return lines[0].strip()


def collect_meta(h: Harness, a: argparse.Namespace) -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    repo = os.path.dirname(HERE)
    git = first_line(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "pyruntime"],
                           capture_output=True, text=True).stdout.strip()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(),
        "cgroup_mode": cgroup_mode(), "python": platform.python_version(),
        "git": git + ("-dirty" if dirty else ""),
        "argv": " ".join(sys.argv[1:]) or "(defaults)",
        "runtimes": a.runtimes,
        "executables": {n: rt.exe for n, rt in h.runtimes.items()},
        "cgroup_parent": h.cgroup_parent,
        "versions": {n: first_line([rt.exe, "--version"]) for n, rt in h.runtimes.items()},
        "crun_wrapper_overhead_ms": None,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "rss_tool": h.rss_tool[0] if h.rss_tool else None,
    }
    crun = h.runtimes.get("crun")
    if crun and crun.exe != "/usr/bin/crun" and meta["cgroup_mode"] == "hybrid":
        wrapped = ["/usr/bin/unshare", "-m", "--propagation", "private", "sh", "-c",
                   "umount /sys/fs/cgroup/unified && exec /bin/true"]
        plain, wrap = [], []
        for _ in range(15):
            plain.append(spawn(["/bin/true"], env=h.env, timeout=10).wall_ms)
            wrap.append(spawn(wrapped, env=h.env, timeout=10).wall_ms)
        meta["crun_wrapper_overhead_ms"] = statistics.median(wrap) - statistics.median(plain)
    return meta


def write_json(path: str, results: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(path + ".tmp", path)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (the runtimes create rootful containers)")
    t_start = time.monotonic()
    signal.signal(signal.SIGTERM, _on_sigterm)
    become_subreaper()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    h = Harness.setup(a.runtimes, a.exes, rootfs=a.rootfs, timeout=a.timeout,
                      workdir_base=a.workdir, log=log)
    results: dict = {"meta": {}, "benchmarks": {}, "complete": False}
    try:
        results["meta"] = collect_meta(h, a)
        log(f"bench: runtimes {', '.join(a.runtimes)}; work dir {h.workdir}; "
            f"cgroup parent {h.cgroup_parent}")
        for name in a.only:
            t0 = time.monotonic()
            log(f"bench: {name} ...")
            try:
                results["benchmarks"][name] = benchmarks.BENCHMARKS[name](h, a.runtimes, a)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # a harness bug must not leave containers behind
                import traceback
                traceback.print_exc()
                results["benchmarks"][name] = {"title": name, "skipped": f"harness error: {e!r}",
                                               "metrics": [], "status": {}}
            log(f"bench: {name} done in {time.monotonic() - t0:.1f} s")
        results["complete"] = True
    except KeyboardInterrupt:
        log("bench: interrupted; cleaning up")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish the cleanup
        problems = h.cleanup(keep_workdir=a.keep, log=log)
        results["cleanup_problems"] = problems
        for p in problems:
            log(f"bench: cleanup: {p}")
        results["meta"]["elapsed_s"] = round(time.monotonic() - t_start, 1)
        results["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        if results["meta"].get("runtimes"):
            write_json(a.json, results)
            log(f"bench: wrote {a.json}")
    print(report.render_text(results))
    return 0 if results["complete"] else 130


if __name__ == "__main__":
    raise SystemExit(main())
