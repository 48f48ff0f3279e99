"""The benchmarks. Each takes (harness, runtime names, options) and returns a JSON-able dict:

    {"title", "params", "metrics": [metric...], "status": {series: {runtime: {...}}}, "extra"?}

A metric is {"series", "key", "label", "unit", "stats": {rt: summary|None}, "ratios",
"target", "target_status"}. Runtimes alternate round by round (rotating who goes first) so
drift in machine load hits all of them alike. A failing round is recorded with its error; a
runtime failing `max_failures` rounds in a row (or its smoke check) is dropped from the rest of
that series, never crashing the harness.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import threading
import time
from collections import defaultdict

from harness import (LOCK_RE, TIMEOUT_MARK, Harness, RoundFailed, python_interpreter,
                     python_launcher, read_kib, reap_zombies, spawn, wait_exit)

TRUE = ["/bin/true"]
SMOKE_WORD = "pyruntime-bench-ok"


def target_vs(base: str, max_ratio: float = 1.0) -> dict:
    return {"text": f"≤{max_ratio:.1f}× {base}", "ratio": f"pyruntime/{base}", "max": max_ratio}


def target_abs(max_value: float, text: str) -> dict:
    return {"text": text, "abs_max": max_value}


def summarize(vals: list[float]) -> dict:
    s = sorted(vals)
    out = {"n": len(s), "median": statistics.median(s), "mean": statistics.fmean(s),
           "min": s[0], "max": s[-1]}
    out["p90"] = s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]
    out["stdev"] = statistics.stdev(s) if len(s) > 1 else 0.0
    return out


def rotate(rts: list[str], i: int) -> list[str]:
    k = i % len(rts)
    return rts[k:] + rts[:k]


class Recorder:
    def __init__(self, max_failures: int):
        self.max_failures = max_failures
        self.samples: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.state: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()

    def _st(self, series: str, rt: str) -> dict:
        return self.state.setdefault((series, rt), {
            "ok_rounds": 0, "failed_rounds": 0, "consecutive_failures": 0, "errors": [],
            "gave_up": False})

    def active(self, series: str, rt: str) -> bool:
        return not self._st(series, rt)["gave_up"]

    def ok(self, series: str, rt: str, measured: bool = True, **values: float) -> None:
        with self._lock:
            st = self._st(series, rt)
            st["consecutive_failures"] = 0
            if measured:
                st["ok_rounds"] += 1
                for k, v in values.items():
                    if v is not None:
                        self.samples[(series, k)][rt].append(v)

    def add(self, series: str, rt: str, **values: float) -> None:
        with self._lock:
            for k, v in values.items():
                self.samples[(series, k)][rt].append(v)

    def fail(self, series: str, rt: str, msg: str, fatal: bool = False) -> None:
        with self._lock:
            st = self._st(series, rt)
            st["failed_rounds"] += 1
            st["consecutive_failures"] += 1
            if msg not in st["errors"] and len(st["errors"]) < 5:
                st["errors"].append(msg)
            if fatal or TIMEOUT_MARK in msg or st["consecutive_failures"] >= self.max_failures:
                st["gave_up"] = True

    def metric(self, series: str, key: str, label: str, unit: str, rts: list[str],
               target: dict | None = None, scale: float = 1.0) -> dict:
        stats = {}
        for rt in rts:
            vals = self.samples.get((series, key), {}).get(rt)
            stats[rt] = summarize([v * scale for v in vals]) if vals else None
        if stats[rt] is not None:
            stats[rt]["samples"] = [round(v * scale, 4) for v in vals]
        ratios = {}
        py = stats.get("pyruntime")
        for base in ("runc", "crun"):
            b = stats.get(base)
            if py and b and b["median"]:
                ratios[f"pyruntime/{base}"] = py["median"] / b["median"]
        status = None
        if target and py:
            if "ratio" in target and target["ratio"] in ratios:
                status = "met" if ratios[target["ratio"]] <= target["max"] else "missed"
            elif "abs_max" in target:
                status = "met" if py["median"] <= target["abs_max"] else "missed"
        elif target and "pyruntime" in rts:
            status = "failed"
        return {"series": series, "key": key, "label": label, "unit": unit, "stats": stats,
                "ratios": ratios, "target": target, "target_status": status}

    def status(self, rts: list[str]) -> dict:
        out: dict[str, dict] = {}
        for (series, rt), st in self.state.items():
            out.setdefault(series, {})[rt] = {k: v for k, v in st.items() if k != "consecutive_failures"}
        return out


# --------------------------------------------------------------------------------------------
# shared steps


def lifecycle_once(h: Harness, rt: str, tag: str, args: list[str] = TRUE) -> dict:
    """create + start + wait for the container's exit + delete; per-step and total ms."""
    cid = h.new_id(tag, rt)
    b = h.bundle(cid, args)
    t0 = time.perf_counter()
    try:
        rc, pid = h.create(rt, cid, b)
        rs = h.must(rt, "start", cid)
        t2 = time.perf_counter()
        wait_exit(pid, h.timeout)
        t3 = time.perf_counter()
        rd = h.delete(rt, cid)
        t4 = time.perf_counter()
    except BaseException:
        h.force_delete(rt, cid)
        raise
    return {"total": (t4 - t0) * 1000, "create": rc.wall_ms, "start": rs.wall_ms,
            "wait": (t3 - t2) * 1000, "delete": rd.wall_ms,
            "stderr": "\n".join(r.stderr for r in (rc, rs, rd))}


def smoke_run(h: Harness, rec: Recorder, series: str, rt: str) -> bool:
    """`run` of echo must print its word: catches a runtime that exits 0 without running."""
    cid = h.new_id("smoke", rt)
    r = h.cmd(rt, "run", "--bundle", h.bundle(cid, ["/bin/echo", SMOKE_WORD]), cid)
    if r.ok and SMOKE_WORD in r.stdout:
        return True
    h.force_delete(rt, cid)
    why = r.describe() if not r.ok else f"`run` exit 0 but the container printed {r.stdout[:80]!r}"
    rec.fail(series, rt, f"smoke: {why}", fatal=True)
    return False


def _run_true(h: Harness, rt: str, tag: str, rss: bool = False):
    cid = h.new_id(tag, rt)
    b = h.bundle(cid, TRUE)
    r = h.cmd(rt, "run", "--bundle", b, cid, rss=rss)
    if not r.ok:
        h.force_delete(rt, cid)
    return r


# --------------------------------------------------------------------------------------------
# 1. lifecycle


def _gap(o) -> None:
    """--gap: let the host go quiet before a timed command (outside the timed region)."""
    if getattr(o, "gap", 0):
        time.sleep(o.gap / 1000)


def start_sleepers(h: Harness, rec: Recorder, rts: list[str], tag: str, series: tuple[str, ...],
                   into: dict[str, tuple[str, int]]) -> None:
    """A running `sleep 1000` container per runtime, into `into` (which the caller's `finally`
    stops); a runtime whose setup fails is dropped from `series`."""
    for rt in rts:
        try:
            into[rt] = h.start_sleeper(rt, tag)
        except RoundFailed as e:
            for name in series:
                rec.fail(name, rt, f"setup (sleep container): {e}", fatal=True)


def floor_argv(h: Harness, rt: str) -> list[str]:
    """A runtime's executable started with nothing to do: for a Python launcher (pyruntime),
    its interpreter (same binary and flags) running none of the runtime's code and leaving with
    posix._exit, as every pyruntime command leaves; for any other executable, `--version`."""
    interp = python_interpreter(h.runtimes[rt].exe)
    return [*interp, "-c", "import posix; posix._exit(0)"] if interp else [h.runtimes[rt].exe, "--version"]


def sample_floor(h: Harness, rec: Recorder, rt: str, measured: bool) -> None:
    """One floor sample (series "floor"), taken in the same round as the benchmark's commands:
    this machine's speed drifts, so pyruntime's time minus its interpreter starts is only
    meaningful against a floor measured alongside."""
    r = spawn(floor_argv(h, rt), env=h.env, timeout=h.timeout)
    if not r.ok:
        rec.fail("floor", rt, r.describe())
    elif measured:
        rec.add("floor", rt, floor=r.wall_ms)


def floor_metric(rec: Recorder, rts: list[str]) -> dict:
    return rec.metric("floor", "floor", "start and exit, nothing done", "ms", rts)


def bench_lifecycle(h: Harness, rts: list[str], o) -> dict:
    rec = Recorder(o.max_failures)
    for rt in rts:
        smoke_run(h, rec, "run", rt)
    for i in range(o.warmup + o.rounds):
        measured = i >= o.warmup
        for rt in rotate(rts, i):
            sample_floor(h, rec, rt, measured)
            if rec.active("lifecycle", rt):
                _gap(o)
                try:
                    s = lifecycle_once(h, rt, "lc")
                except RoundFailed as e:
                    rec.fail("lifecycle", rt, str(e))
                else:
                    rec.ok("lifecycle", rt, measured, **{k: s[k] for k in
                                                         ("total", "create", "start", "wait", "delete")})
            if rec.active("run", rt):
                _gap(o)
                r = _run_true(h, rt, "run")
                if r.ok:
                    rec.ok("run", rt, measured, run=r.wall_ms)
                else:
                    rec.fail("run", rt, r.describe())
    reap_zombies()
    m = rec.metric
    return {
        "title": "Lifecycle of /bin/true: create + start + wait for exit + delete; and `run`",
        "params": {"rounds": o.rounds, "warmup": o.warmup, "gap_ms": getattr(o, "gap", 0.0)},
        "metrics": [
            m("lifecycle", "total", "create+start+wait+delete", "ms", rts, target_vs("runc")),
            m("lifecycle", "create", "  create", "ms", rts),
            m("lifecycle", "start", "  start", "ms", rts),
            m("lifecycle", "wait", "  wait for exit", "ms", rts),
            m("lifecycle", "delete", "  delete", "ms", rts),
            m("run", "run", "run", "ms", rts, target_vs("runc")),
            floor_metric(rec, rts),
        ],
        "status": rec.status(rts),
    }


# --------------------------------------------------------------------------------------------
# 2. 100 sequential runs


def bench_seq(h: Harness, rts: list[str], o) -> dict:
    rec = Recorder(o.max_failures)
    n = o.seq_count
    for rt in rts:
        if smoke_run(h, rec, "seq", rt):
            _run_true(h, rt, "seqw")  # warm the page cache for --only seq
    for rep in range(o.seq_reps):
        for rt in rotate(rts, rep):
            if not rec.active("seq", rt):
                continue
            jobs = []
            for _ in range(n):
                cid = h.new_id("seq", rt)
                jobs.append((cid, h.bundle(cid, TRUE)))
            err = None
            t0 = time.perf_counter()
            for cid, b in jobs:
                r = h.cmd(rt, "run", "--bundle", b, cid)
                if not r.ok:
                    err = r.describe()
                    h.force_delete(rt, cid)
                    break
            wall = time.perf_counter() - t0
            if err:
                rec.fail("seq", rt, err)
            else:
                rec.ok("seq", rt, total=wall, per_run=wall * 1000 / n)
            for cid, b in jobs:
                shutil.rmtree(b, ignore_errors=True)
    reap_zombies()
    m = rec.metric
    return {
        "title": f"{n} sequential `run` of /bin/true",
        "params": {"count": n, "repetitions": o.seq_reps},
        "metrics": [
            m("seq", "total", f"{n} runs, total", "s", rts, target_vs("runc")),
            m("seq", "per_run", "  per run", "ms", rts),
        ],
        "status": rec.status(rts),
    }


# --------------------------------------------------------------------------------------------
# 3. parallel lifecycles


def bench_parallel(h: Harness, rts: list[str], o) -> dict:
    rec = Recorder(o.max_failures)
    w = o.par_width
    for rt in rts:  # one sequential warm-up lifecycle
        try:
            lifecycle_once(h, rt, "parw")
        except RoundFailed as e:
            rec.fail("parallel", rt, f"warm-up lifecycle: {e}")
    lock_examples: dict[str, list[str]] = defaultdict(list)
    for rep in range(o.par_reps):
        for rt in rotate(rts, rep):
            if not rec.active("parallel", rt):
                continue
            outcomes: list = [None] * w
            go = threading.Event()

            def worker(k: int, rt: str = rt) -> None:
                go.wait()
                try:
                    outcomes[k] = lifecycle_once(h, rt, "par")
                except Exception as e:  # noqa: BLE001 - recorded, never raised
                    outcomes[k] = e

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(w)]
            for t in threads:
                t.start()
            t0 = time.perf_counter()
            go.set()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            reap_zombies()
            fails = [x for x in outcomes if isinstance(x, Exception)]
            texts = [x["stderr"] if isinstance(x, dict) else str(x) for x in outcomes]
            locks = [ln for t in texts for ln in t.splitlines() if LOCK_RE.search(ln)]
            for ln in locks[:3]:
                if len(lock_examples[rt]) < 3:
                    lock_examples[rt].append(ln.strip()[:300])
            rec.add("parallel", rt, lock_errors=len(locks))
            if fails:
                rec.fail("parallel", rt, f"{len(fails)}/{w} lifecycles failed; first: {fails[0]}")
            else:
                rec.ok("parallel", rt, wall=wall, per_container=wall * 1000 / w)
    m = rec.metric
    return {
        "title": f"{w} lifecycles (create+start+wait+delete of /bin/true) in parallel",
        "params": {"width": w, "repetitions": o.par_reps},
        "metrics": [
            m("parallel", "wall", f"{w} in parallel, wall", "s", rts, target_vs("runc")),
            m("parallel", "per_container", "  wall / container", "ms", rts),
            m("parallel", "lock_errors", "  lock errors (total)", "count", rts),
        ],
        "status": rec.status(rts),
        "extra": {"lock_error_examples": dict(lock_examples)},
    }


# --------------------------------------------------------------------------------------------
# 4. exec


def bench_exec(h: Harness, rts: list[str], o) -> dict:
    rec = Recorder(o.max_failures)
    sleepers: dict[str, tuple[str, int]] = {}
    try:
        start_sleepers(h, rec, rts, "exec", ("exec",), sleepers)
        for rt, (cid, _) in sleepers.items():
            r = h.cmd(rt, "exec", cid, "/bin/echo", SMOKE_WORD)
            if not (r.ok and SMOKE_WORD in r.stdout):
                why = r.describe() if not r.ok else f"exit 0 but printed {r.stdout[:80]!r}"
                rec.fail("exec", rt, f"smoke: {why}", fatal=True)
        for i in range(o.warmup + o.rounds):
            for rt in rotate(rts, i):
                if rt not in sleepers or not rec.active("exec", rt):
                    continue
                sample_floor(h, rec, rt, i >= o.warmup)
                _gap(o)
                r = h.cmd(rt, "exec", sleepers[rt][0], "/bin/true")
                if r.ok:
                    rec.ok("exec", rt, i >= o.warmup, exec=r.wall_ms)
                else:
                    rec.fail("exec", rt, r.describe())
    finally:
        for rt, (cid, pid) in sleepers.items():
            h.stop_sleeper(rt, cid, pid)
        reap_zombies()
    m = rec.metric
    return {
        "title": "`exec` of /bin/true into a running `sleep 1000` container",
        "params": {"rounds": o.rounds, "warmup": o.warmup, "gap_ms": getattr(o, "gap", 0.0)},
        "metrics": [
            m("exec", "exec", "exec /bin/true", "ms", rts, target_vs("runc")),
            floor_metric(rec, rts),
        ],
        "status": rec.status(rts),
    }


# --------------------------------------------------------------------------------------------
# 5. memory


def bench_memory(h: Harness, rts: list[str], o) -> dict:
    rec = Recorder(o.max_failures)
    if not h.rss_tool:
        return {"title": "Memory", "skipped": "no /usr/bin/time or busybox to measure peak RSS",
                "metrics": [], "status": {}}
    floor = spawn(["/bin/true"], env=h.env, timeout=10, rss=h.rss_tool).maxrss_kib
    for i in range(o.mem_rounds):
        for rt in rotate(rts, i):
            if rec.active("memory", rt):
                cid = h.new_id("mem", rt)
                try:
                    rc, pid = h.create(rt, cid, h.bundle(cid, TRUE), rss=True)
                    mem = read_kib(pid)
                    if "VmRSS" not in mem:
                        raise RoundFailed(f"cannot read /proc/{pid}/status of the created init")
                    rs = h.must(rt, "state", cid, rss=True)
                    rst = h.must(rt, "start", cid, rss=True)
                    wait_exit(pid, h.timeout)
                    rd = h.delete(rt, cid, rss=True)
                except RoundFailed as e:
                    h.force_delete(rt, cid)
                    rec.fail("memory", rt, str(e))
                else:
                    rec.ok("memory", rt, init_rss=mem["VmRSS"], init_pss=mem.get("Pss"),
                           init_anon=mem.get("RssAnon"), create=rc.maxrss_kib,
                           state=rs.maxrss_kib, start=rst.maxrss_kib, delete=rd.maxrss_kib)
            if rec.active("memory-run", rt):
                r = _run_true(h, rt, "memrun", rss=True)
                if r.ok:
                    rec.ok("memory-run", rt, run=r.maxrss_kib)
                else:
                    rec.fail("memory-run", rt, r.describe())
    reap_zombies()
    m = rec.metric
    return {
        "title": "Memory: created-but-not-started init RSS; peak RSS (ru_maxrss) of each command",
        "params": {"rounds": o.mem_rounds},
        "extra": {"rss_tool": h.rss_tool[0], "rss_floor_kib": floor,
                  "note": "peak RSS = ru_maxrss of the command run under rss_tool (fork+exec+"
                          "wait4 from a small process; a fork of the Python harness would "
                          "inherit its RSS); rss_floor_kib is /bin/true under the same tool"},
        "metrics": [
            m("memory", "init_rss", "created init VmRSS", "KiB", rts, target_abs(10 * 1024, "≤10 MiB")),
            m("memory", "init_pss", "  created init Pss", "KiB", rts),
            m("memory", "init_anon", "  created init RssAnon", "KiB", rts),
            m("memory", "create", "create peak RSS", "KiB", rts),
            m("memory", "start", "start peak RSS", "KiB", rts),
            m("memory", "state", "state peak RSS", "KiB", rts),
            m("memory", "delete", "delete peak RSS", "KiB", rts),
            m("memory-run", "run", "run peak RSS", "KiB", rts),
        ],
        "status": rec.status(rts),
    }


# --------------------------------------------------------------------------------------------
# 6. import cost (pyruntime only)


def parse_importtime(text: str) -> dict:
    """Parse `-X importtime` lines into totals and the heaviest modules.

    total: sum of cumulative times of top-level imports (everything imported);
    startup: the interpreter's own top-level imports before the first `pyruntime` one;
    top_self: modules imported after start-up with the largest self time (self times partition
    the total, so these are where the time goes);
    top_deps: outermost non-pyruntime modules imported after start-up, by cumulative time
    (i.e. which dependency pulls in how much).
    """
    entries = []  # (depth, name, self_us, cum_us, children)
    pending: dict[int, list] = defaultdict(list)
    for line in text.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        try:
            self_us, cum_us = int(parts[0]), int(parts[1])
        except ValueError:
            continue  # the header line
        raw = parts[2].rstrip("\n")
        name = raw.lstrip(" ")
        depth = max(0, (len(raw) - len(name) - 1) // 2)
        node = {"name": name, "depth": depth, "self": self_us, "cum": cum_us,
                "children": pending.pop(depth + 1, [])}
        entries.append(node)
        pending[depth].append(node)
    top = pending.get(0, [])
    total = sum(n["cum"] for n in top)
    startup = 0
    for n in top:
        if n["name"].split(".")[0] == "pyruntime":
            break
        startup += n["cum"]
    seen_pkg = False
    deps = []
    after_startup = []

    def collect(node: dict) -> None:
        after_startup.append(node)
        for c in node["children"]:
            collect(c)

    def walk(node: dict, inside_pyruntime: bool) -> None:
        is_py = node["name"].split(".")[0] == "pyruntime"
        if not is_py and (inside_pyruntime or node["depth"] == 0):
            deps.append(node)
            return
        for c in node["children"]:
            walk(c, inside_pyruntime or is_py)

    for n in top:
        if n["name"].split(".")[0] == "pyruntime":
            seen_pkg = True
        if seen_pkg:
            walk(n, False)
            collect(n)
    ms = lambda us: round(us / 1000, 2)  # noqa: E731
    by_self = sorted(after_startup, key=lambda n: n["self"], reverse=True)[:5]
    by_dep = sorted(deps, key=lambda n: n["cum"], reverse=True)[:5]
    return {
        "total_ms": ms(total), "startup_ms": ms(startup), "pyruntime_ms": ms(total - startup),
        "modules": len(entries),
        "top_self": [[n["name"], ms(n["self"])] for n in by_self],
        "top_deps": [[n["name"], ms(n["cum"])] for n in by_dep],
    }


def bench_imports(h: Harness, rts: list[str], o) -> dict:
    title = "Import cost per pyruntime command (-X importtime)"
    if "pyruntime" not in rts:
        return {"title": title, "skipped": "pyruntime not among --runtimes", "metrics": [],
                "status": {}}
    rt = "pyruntime"
    env = dict(h.env, PYTHONPROFILEIMPORTTIME="1")
    # Run the console script the way its shebang does, plus -X importtime (an isolated-mode
    # launcher ignores PYTHONPROFILEIMPORTTIME); the variable stays set for anything else.
    launcher = python_launcher(h.runtimes[rt].exe, "-X", "importtime")
    rec = Recorder(o.max_failures)
    per_cmd: dict[str, list[tuple[dict, float, str | None]]] = defaultdict(list)
    state_ctr = None
    try:
        try:
            cid = h.new_id("imp", rt)
            _, pid = h.create(rt, cid, h.bundle(cid, ["sleep", "1000"]))
            state_ctr = (cid, pid)
        except RoundFailed as e:
            rec.fail("imports", rt, f"setup (created container for state): {e}")
        for _ in range(o.import_reps):
            for cmd in ("state", "create", "spec", "list", "kill"):
                pre_pid = None
                if cmd == "state":
                    args = ["state", state_ctr[0] if state_ctr else "pyruntime-bench-missing"]
                elif cmd == "create":
                    cid = h.new_id("impc", rt)
                    args = ["create", "--bundle", h.bundle(cid, TRUE), "--pid-file", h.pidfile(cid), cid]
                    h.live[(rt, cid)] = None
                elif cmd == "spec":
                    d = os.path.join(h.workdir, "bundles", h.new_id("impspec", rt))
                    os.mkdir(d)
                    args = ["spec", "--bundle", d]
                elif cmd == "list":
                    args = ["list"]
                else:
                    cid = h.new_id("impk", rt)
                    try:
                        _, pre_pid = h.create(rt, cid, h.bundle(cid, ["sleep", "1000"]))
                    except RoundFailed as e:
                        rec.fail("imports", rt, f"setup (container to kill): {e}")
                    args = ["kill", cid, "KILL"]
                r = h.cmd(rt, *args, env=env, launcher=launcher)
                parsed = parse_importtime(r.stderr)
                err = None if r.ok else r.describe()
                if parsed["modules"]:
                    rec.ok(cmd, rt, total=parsed["total_ms"], pyruntime=parsed["pyruntime_ms"])
                else:
                    err = err or "no `-X importtime` output (is the command a Python program?)"
                per_cmd[cmd].append((parsed, r.wall_ms, err))
                if err:
                    rec.fail(cmd, rt, err)
                if cmd in ("create", "kill"):
                    if r.ok and cmd == "kill" and pre_pid:
                        try:
                            wait_exit(pre_pid, 10)
                        except RoundFailed:
                            pass
                    h.force_delete(rt, cid)
    finally:
        if state_ctr:
            h.force_delete(rt, state_ctr[0])
        reap_zombies()
    extra = {}
    for cmd, runs in per_cmd.items():
        runs = sorted(runs, key=lambda x: x[0]["total_ms"])
        parsed, wall, err = runs[len(runs) // 2]
        errors = [e for _, _, e in runs if e]
        extra[cmd] = dict(parsed, wall_ms_with_importtime=round(wall, 2),
                          samples_total_ms=[p["total_ms"] for p, _, _ in runs],
                          failed=errors[0] if errors else None)
    metrics = []
    for cmd in ("state", "create", "spec", "list", "kill"):
        metrics.append(rec.metric(cmd, "total", f"{cmd}: import total", "ms", [rt]))
        metrics.append(rec.metric(cmd, "pyruntime", f"  {cmd}: after start-up", "ms", [rt]))
    return {"title": title, "params": {"repetitions": o.import_reps,
                                       "argv": " ".join(launcher or [h.runtimes[rt].exe])},
            "metrics": metrics, "status": rec.status([rt]), "extra": {"commands": extra}}


# --------------------------------------------------------------------------------------------
# 7. state / list / kill latency


def bench_commands(h: Harness, rts: list[str], o) -> dict:
    rec = Recorder(o.max_failures)
    sleepers: dict[str, tuple[str, int]] = {}
    try:
        start_sleepers(h, rec, rts, "cmd", ("state", "list"), sleepers)
        for i in range(o.warmup + o.rounds):
            measured = i >= o.warmup
            for rt in rotate(rts, i):
                if rt not in sleepers:
                    continue
                sample_floor(h, rec, rt, measured)
                cid = sleepers[rt][0]
                if rec.active("state", rt):
                    r = h.cmd(rt, "state", cid)
                    why = None if r.ok else r.describe()
                    if not why:
                        try:
                            st = json.loads(r.stdout)
                            if st.get("id") != cid or st.get("status") != "running":
                                why = f"state says id={st.get('id')!r} status={st.get('status')!r}"
                        except ValueError:
                            why = f"state printed no JSON: {r.stdout[:80]!r}"
                    if why:
                        rec.fail("state", rt, why)
                    else:
                        rec.ok("state", rt, measured, ms=r.wall_ms)
                if rec.active("list", rt):
                    r = h.cmd(rt, "list")
                    if r.ok and cid in r.stdout:
                        rec.ok("list", rt, measured, ms=r.wall_ms)
                    else:
                        rec.fail("list", rt, r.describe() if not r.ok else f"`list` does not show {cid}")
    finally:
        for rt, (cid, pid) in sleepers.items():
            h.stop_sleeper(rt, cid, pid)
    kill_rounds = o.kill_rounds if o.kill_rounds is not None else min(o.rounds, 20)
    for i in range(o.warmup + kill_rounds):
        for rt in rotate(rts, i):
            if not rec.active("kill", rt):
                continue
            try:
                cid, pid = h.start_sleeper(rt, "kill")
            except RoundFailed as e:
                rec.fail("kill", rt, f"setup (sleep container): {e}")
                continue
            r = h.cmd(rt, "kill", cid, "KILL")
            try:
                if not r.ok:
                    raise RoundFailed(r.describe())
                wait_exit(pid, 10)
                h.delete(rt, cid)
            except RoundFailed as e:
                h.force_delete(rt, cid)
                rec.fail("kill", rt, str(e))
            else:
                rec.ok("kill", rt, i >= o.warmup, ms=r.wall_ms)
    reap_zombies()
    m = rec.metric
    return {
        "title": "state / list / kill latency (running `sleep 1000` container)",
        "params": {"rounds": o.rounds, "kill_rounds": kill_rounds, "warmup": o.warmup},
        "metrics": [
            m("state", "ms", "state", "ms", rts, target_vs("runc")),
            m("list", "ms", "list", "ms", rts, target_vs("runc")),
            m("kill", "ms", "kill KILL", "ms", rts, target_vs("runc")),
            floor_metric(rec, rts),
        ],
        "status": rec.status(rts),
    }


# --------------------------------------------------------------------------------------------
# 8. the floor: what no command of a Python runtime can go below


def bench_floor(h: Harness, rts: list[str], o) -> dict:
    """Each runtime's executable started with nothing to do (floor_argv), beside its `state`,
    round by round. Every pyruntime command starts its interpreter once, so floor(pyruntime) /
    state(runc) is the lowest pyruntime/runc any one-process command (state, list, kill, start,
    delete) can reach, however little it does. (lifecycle, exec and commands sample the floor in
    their own rounds too, for report.py's "beyond the interpreter's start" table.)
    """
    title = "The floor: each runtime's executable doing nothing, beside its `state`"
    rec = Recorder(o.max_failures)
    sleepers: dict[str, tuple[str, int]] = {}
    try:
        start_sleepers(h, rec, rts, "floor", ("state",), sleepers)
        for i in range(o.warmup + o.rounds):
            for rt in rotate(rts, i):
                sample_floor(h, rec, rt, i >= o.warmup)
                if rt in sleepers and rec.active("state", rt):
                    r = h.cmd(rt, "state", sleepers[rt][0])
                    if r.ok and '"running"' in r.stdout:
                        rec.ok("state", rt, i >= o.warmup, ms=r.wall_ms)
                    else:
                        rec.fail("state", rt, r.describe() if not r.ok else "state does not say running")
    finally:
        for rt, (cid, pid) in sleepers.items():
            h.stop_sleeper(rt, cid, pid)
        reap_zombies()
    metrics = [floor_metric(rec, rts), rec.metric("state", "ms", "state (running container)", "ms", rts)]
    med = {(x["series"], rt): st["median"] for x in metrics for rt, st in x["stats"].items() if st}
    extra: dict = {"argv": {rt: " ".join(floor_argv(h, rt)) for rt in rts}}
    floor_py = med.get(("floor", "pyruntime"))
    for base in ("runc", "crun"):
        if floor_py and med.get(("state", base)):
            extra[f"least_one_process_ratio_vs_{base}"] = round(floor_py / med[("state", base)], 3)
    return {"title": title, "params": {"rounds": o.rounds, "warmup": o.warmup},
            "metrics": metrics, "status": rec.status(rts), "extra": extra}


BENCHMARKS = {
    "lifecycle": bench_lifecycle,
    "seq": bench_seq,
    "parallel": bench_parallel,
    "exec": bench_exec,
    "memory": bench_memory,
    "imports": bench_imports,
    "commands": bench_commands,
    "floor": bench_floor,
}
