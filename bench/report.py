#!/usr/bin/env python3
"""Render bench results (JSON from bench/run.py) as a text table or Markdown.

    python bench/report.py [bench/results/latest.json]            # Markdown to stdout
    python bench/report.py --format text
    python bench/report.py --out PERF.md
    python bench/report.py --update README.md   # replace the text between
                                                # <!-- bench:begin --> and <!-- bench:end -->
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JSON = os.path.join(HERE, "results", "latest.json")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
ORDER = ["lifecycle", "seq", "parallel", "exec", "memory", "imports", "commands", "floor"]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "KiB":
        return f"{value / 1024:.1f} MiB"
    if unit == "count":
        return f"{value:g}"
    return f"{value:g} {unit}"


def cell(metric: dict, rt: str) -> str:
    st = metric["stats"].get(rt)
    if st is None:
        return "failed"
    if metric["unit"] == "count":  # e.g. lock errors: show the total over all repetitions
        return fmt(round(st["mean"] * st["n"]), "count")
    return fmt(st["median"], metric["unit"])


def ratio_cell(metric: dict, base: str) -> str:
    r = metric["ratios"].get(f"pyruntime/{base}")
    return "—" if r is None else f"{r:.2f}×"


def target_cells(metric: dict) -> tuple[str, str]:
    t = metric.get("target")
    if not t:
        return "", ""
    status = metric.get("target_status") or "n/a"
    mark = {"met": "✅ met", "missed": "❌ missed", "failed": "❌ failed"}.get(status, status)
    return t["text"], mark


def runtimes_of(results: dict) -> list[str]:
    return results["meta"]["runtimes"]


def table(results: dict, name: str) -> tuple[list[str], list[list[str]]]:
    rts = runtimes_of(results)
    b = results["benchmarks"][name]
    bases = [x for x in ("runc", "crun") if "pyruntime" in rts and x in rts]
    head = ["metric", *rts, *[f"pyruntime/{x}" for x in bases], "target", "status"]
    rows = []
    for m in b["metrics"]:
        t, mark = target_cells(m)
        rows.append([m["label"], *[cell(m, rt) for rt in rts],
                     *[ratio_cell(m, x) for x in bases], t, mark])
    return head, rows


def failure_lines(results: dict, name: str) -> list[str]:
    out = []
    for series, per_rt in results["benchmarks"][name].get("status", {}).items():
        for rt, st in per_rt.items():
            if st["failed_rounds"] or st["gave_up"]:
                err = st["errors"][0] if st["errors"] else "?"
                gave = ", gave up" if st["gave_up"] else ""
                out.append(f"{rt} [{series}]: {st['failed_rounds']} failed / {st['ok_rounds']} ok "
                           f"rounds{gave}: {err}")
    return out


def median_of(results: dict, bench: str, series: str, key: str, rt: str) -> float | None:
    for m in results["benchmarks"].get(bench, {}).get("metrics", []):
        if (m["series"], m["key"]) == (series, key) and m["stats"].get(rt):
            return m["stats"][rt]["median"]
    return None


def floor_notes(results: dict, ex: dict) -> list[str]:
    """What the floor benchmark implies for the targets (see benchmarks.bench_floor)."""
    out = [f"{rt}: `{argv}`" for rt, argv in ex.get("argv", {}).items()]
    for base in ("runc", "crun"):
        r = ex.get(f"least_one_process_ratio_vs_{base}")
        if r is not None:
            out.append(f"lowest pyruntime/{base} any one-process command (state, list, kill, start, "
                       f"delete) can reach, doing nothing at all: {r:.2f}× (the floor over {base}'s state)")
    life = median_of(results, "lifecycle", "lifecycle", "total", "runc")
    life_floor = median_of(results, "lifecycle", "floor", "floor", "pyruntime")
    if life_floor and life:
        out.append(f"create+start+delete start the interpreter 3 times: {fmt(3 * life_floor, 'ms')}, "
                   f"{3 * life_floor / life:.0%} of runc's whole lifecycle ({fmt(life, 'ms')}, same "
                   f"rounds) before any work")
    return out


# (benchmark, series, key, label, how many times pyruntime starts its interpreter); each
# benchmark samples the floor in its own rounds (benchmarks.sample_floor)
INTERPRETER_STARTS = [
    ("lifecycle", "lifecycle", "total", "create+start+wait+delete", 3),
    ("lifecycle", "lifecycle", "create", "  create", 1),
    ("lifecycle", "lifecycle", "start", "  start", 1),
    ("lifecycle", "lifecycle", "delete", "  delete", 1),
    ("lifecycle", "run", "run", "run", 1),
    ("exec", "exec", "exec", "exec", 1),
    ("commands", "state", "ms", "state", 1),
    ("commands", "list", "ms", "list", 1),
    ("commands", "kill", "ms", "kill KILL", 1),
    ("floor", "state", "ms", "state (floor benchmark)", 1),
]


BEYOND = ("pyruntime's median minus its interpreter starts (n × the floor: its interpreter doing "
          "nothing, sampled in the same benchmark's rounds), against runc's whole median")


def beyond_floor_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Each target's pyruntime median minus its interpreter starts (n × the floor sampled in the
    same benchmark's rounds), against runc's whole median: pyruntime's own work, all that
    optimising pyruntime's code can cut."""
    head = ["metric", "interpreter starts", "pyruntime", "floor", "minus n × floor", "runc",
            "own work / runc"]
    rows = []
    for bench, series, key, label, n in INTERPRETER_STARTS:
        floor = median_of(results, bench, "floor", "floor", "pyruntime")
        py = median_of(results, bench, series, key, "pyruntime")
        rc = median_of(results, bench, series, key, "runc")
        if floor is None or py is None or rc is None:
            continue
        own = py - n * floor
        rows.append([label, str(n), fmt(py, "ms"), fmt(floor, "ms"), fmt(own, "ms"), fmt(rc, "ms"),
                     f"{own / rc:.2f}×"])
    return head, rows


def notes(name: str, b: dict, results: dict) -> list[str]:
    ex = b.get("extra", {})
    out = []
    if name == "floor":
        out += floor_notes(results, ex)
    if ex.get("rss_tool"):
        out.append(f"peak RSS: ru_maxrss of the command run under {ex['rss_tool']} "
                   f"(its floor, /bin/true: {fmt(ex.get('rss_floor_kib'), 'KiB')}); init RSS from "
                   f"/proc/<pid>/status after `create`")
    if "commands" in ex:
        out.append("import total = sum of top-level cumulative times; start-up = the interpreter's "
                   "own imports before pyruntime's; `create` includes imports in its forked children")
    return out


def summary_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    rts = runtimes_of(results)
    head = ["benchmark", *rts, "ratio", "target", "status"]
    rows = []
    for name in ORDER:
        b = results["benchmarks"].get(name)
        if not b:
            continue
        for m in b["metrics"]:
            if not m.get("target"):
                continue
            t = m["target"]
            ratio = m["ratios"].get(t.get("ratio", ""))
            rtxt = f"{ratio:.2f}×" if ratio is not None else "—"
            tt, mark = target_cells(m)
            rows.append([f"{name}: {m['label'].strip()}", *[cell(m, rt) for rt in rts], rtxt, tt, mark])
    return head, rows


def meta_lines(results: dict) -> list[str]:
    m = results["meta"]
    vers = "; ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    lines = [
        f"{m.get('date', '?')} on {m.get('cpu', '?')} ({m.get('nproc', '?')} CPUs), kernel "
        f"{m.get('kernel', '?')}, cgroups {m.get('cgroup_mode', '?')}; pyruntime commit "
        f"{m.get('git', '?')}",
        f"versions: {vers}",
    ]
    if m.get("crun_wrapper_overhead_ms") is not None:
        lines.append(f"crun goes through the hybrid-cgroup wrapper (private mount namespace); its "
                     f"overhead, included in every crun number: ~{m['crun_wrapper_overhead_ms']:.1f} ms "
                     f"per call")
    lines.append(f"parameters: {m.get('argv', '')}; medians; total run {m.get('elapsed_s', 0):.0f} s"
                 + ("" if results.get("complete", True) else " — INCOMPLETE (interrupted)"))
    la0, la1 = m.get("loadavg_start"), m.get("loadavg_end")
    if la0:
        busy = max(la0[0], (la1 or la0)[0]) > 0.5 * (m.get("nproc") or 1)
        lines.append(f"load average (1 min) at start {la0[0]:.2f}" + (f", at end {la1[0]:.2f}" if la1 else "")
                     + (" — the machine was busy; expect noisy numbers" if busy else ""))
    return lines


# ------------------------------------------------------------------ text


def text_table(head: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    def line(r):  # noqa: E306
        return indent + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                  for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([line(head), indent + "  ".join("-" * w for w in widths), *map(line, rows)])


def imports_rows(b: dict) -> tuple[list[str], list[list[str]]]:
    head = ["command", "import total", "start-up", "after start-up", "top 5 by self time",
            "heaviest dependencies (cumulative)"]
    rows = []
    for cmd in ("state", "create", "spec", "list", "kill"):
        e = b.get("extra", {}).get("commands", {}).get(cmd)
        if not e:
            continue
        fails = " (command failed)" if e.get("failed") else ""
        rows.append([cmd + fails, fmt(e["total_ms"], "ms"), fmt(e["startup_ms"], "ms"),
                     fmt(e["pyruntime_ms"], "ms"),
                     ", ".join(f"{n} {v:.1f}" for n, v in e["top_self"]),
                     ", ".join(f"{n} {v:.1f}" for n, v in e["top_deps"])])
    return head, rows


def render_text(results: dict) -> str:
    out = ["pyruntime benchmarks — " + meta_lines(results)[0], *("  " + ln for ln in meta_lines(results)[1:]), ""]
    for name in ORDER:
        b = results["benchmarks"].get(name)
        if not b:
            continue
        params = ", ".join(f"{k}={v}" for k, v in b.get("params", {}).items())
        out.append(f"== {name}: {b['title']}" + (f" ({params})" if params else ""))
        if b.get("skipped"):
            out += [f"  skipped: {b['skipped']}", ""]
            continue
        if name == "imports":
            head, rows = imports_rows(b)
            for r in rows:
                out.append(f"  {r[0]:<8} total {r[1]:>9}  start-up {r[2]:>8}  after start-up {r[3]:>9}")
                out.append(f"           top self: {r[4]}")
                out.append(f"           heaviest deps: {r[5]}")
        else:
            out.append(text_table(*table(results, name)))
        for ln in notes(name, b, results):
            out.append(f"  note: {ln}")
        for ln in failure_lines(results, name):
            out.append(f"  ! {ln}")
        ex = b.get("extra", {}).get("lock_error_examples")
        for rt, lines in (ex or {}).items():
            for ln in lines:
                out.append(f"  ! {rt} lock-like stderr: {ln}")
        out.append("")
    if beyond_floor_rows(results)[1]:
        out += [f"== beyond the interpreter's start: {BEYOND}", text_table(*beyond_floor_rows(results)), ""]
    head, rows = summary_rows(results)
    if rows:
        out += ["== summary (targets for pyruntime)", text_table(head, rows), ""]
    if results.get("cleanup_problems"):
        out += ["cleanup problems:", *("  " + p for p in results["cleanup_problems"]), ""]
    return "\n".join(out)


# ------------------------------------------------------------------ markdown


def md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def md_table(head: list[str], rows: list[list[str]]) -> str:
    align = ["---" if h in ("metric", "benchmark", "command", "target", "status") or h.startswith(("top", "heaviest"))
             else "---:" for h in head]
    lines = ["| " + " | ".join(md_escape(h) for h in head) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        first = "↳ " + r[0].strip() if r[0].startswith("  ") else r[0]
        lines.append("| " + " | ".join(md_escape(c) for c in [first, *r[1:]]) + " |")
    return "\n".join(lines)


def render_markdown(results: dict) -> str:
    meta = meta_lines(results)
    out = ["_Generated by `bench/report.py` from `bench/run.py` results: "
           + md_escape(meta[0]) + "._", ""]
    out += [f"- {md_escape(ln)}" for ln in meta[1:]]
    out.append("")
    head, rows = summary_rows(results)
    if rows:
        out += ["**Targets** (pyruntime's median against the target):", "", md_table(head, rows), ""]
    for name in ORDER:
        b = results["benchmarks"].get(name)
        if not b:
            continue
        params = ", ".join(f"{k}={v}" for k, v in b.get("params", {}).items())
        out += [f"**{name}** — {md_escape(b['title'])}" + (f" ({params})" if params else ""), ""]
        if b.get("skipped"):
            out += [f"_skipped: {b['skipped']}_", ""]
            continue
        if name == "imports":
            out.append(md_table(*imports_rows(b)))
        else:
            out.append(md_table(*table(results, name)))
        fl = failure_lines(results, name)
        if fl or notes(name, b, results):
            out.append("")
            out += [f"- {md_escape(ln)}" for ln in notes(name, b, results)]
            out += [f"- ⚠ {md_escape(ln)}" for ln in fl]
        out.append("")
    if beyond_floor_rows(results)[1]:
        out += [f"**Beyond the interpreter's start** — {BEYOND}", "", md_table(*beyond_floor_rows(results)), ""]
    return "\n".join(out).rstrip() + "\n"


def update_file(path: str, md: str) -> None:
    with open(path) as f:
        text = f.read()
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"report: {path} has no '{BEGIN}' ... '{END}' section to replace")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path + ".tmp", "w") as f:
        f.write(f"{head}{BEGIN}\n{md}{END}{tail}")
    os.replace(path + ".tmp", path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="?", default=DEFAULT_JSON)
    ap.add_argument("--format", choices=("markdown", "text"), default="markdown")
    ap.add_argument("--out", help="write to this file instead of stdout")
    ap.add_argument("--update", metavar="FILE", help=f"replace the {BEGIN}...{END} section of FILE")
    a = ap.parse_args(argv)
    with open(a.json) as f:
        results = json.load(f)
    rendered = render_text(results) if a.format == "text" else render_markdown(results)
    if a.update:
        update_file(a.update, render_markdown(results))
    elif a.out:
        with open(a.out, "w") as f:
            f.write(rendered)
    else:
        sys.stdout.write(rendered)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
