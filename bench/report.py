"""The results as markdown: one table per scenario, ratios computed inside each round."""

from __future__ import annotations

import platform
import shutil
import statistics
import subprocess
from pathlib import Path

from .model import Run, Scenario


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def ratio(runs: dict, name: str, ref: str, spread: bool = False) -> str:
    """Median over rounds of name/ref measured in the same round."""
    per_round = [runs[name][r].rps / runs[ref][r].rps for r in runs.get(name, {})
                 if r in runs.get(ref, {}) and runs[ref][r].rps and runs[name][r].ok]
    if not per_round:
        return "-"
    text = f"{med(per_round):.2f}"
    if spread and len(per_round) > 1:
        text += f" ({min(per_round):.2f}-{max(per_round):.2f})"
    return text


def table(all_runs: list[Run], scenarios: list[Scenario], order: list[str], refs_by_kind: dict[str, list[str]],
          spread_all: tuple = ("h2",)) -> str:
    """``refs_by_kind``: the ratio columns of each scenario kind, the first one with its min-max
    range (every one for the kinds in ``spread_all``)."""
    out = []
    for sc in scenarios:
        by: dict[str, dict[int, Run]] = {}
        for r in all_runs:
            if r.scenario == sc.name and r.ok:
                by.setdefault(r.server, {})[r.round] = r
        failed = sorted({r.server for r in all_runs if r.scenario == sc.name and not r.ok})
        if not by and not failed:
            continue
        rounds = max((len(v) for v in by.values()), default=0)
        out.append(f"\n### {sc.name}: {sc.title} ({rounds} rounds)\n")
        if sc.kind == "idle":
            out.append("| server | connections kept | KiB RSS per connection | worker RSS MiB |")
            out.append("|---|---|---|---|")
            for name in order:
                rs = list(by.get(name, {}).values())
                if rs:
                    out.append(f"| {name} | {min(r.alive for r in rs)}/{sc.conns} | "
                               f"{med([r.kib_per_conn for r in rs]):.1f} | {max(r.rss_mib for r in rs):.1f} |")
        else:
            unit = "msg/s" if sc.kind == "ws" else "req/s"
            latency = "mean ms" if sc.kind == "h2" else "p99 ms"
            refs = [x for x in refs_by_kind.get(sc.kind, []) if x in by]
            out.append(f"| server | {unit} median | min | max | {latency} | "
                       + "".join(f"x {x} | " for x in refs)
                       + "srv CPU µs/op | core0 % | core1 % | peak RSS MiB | errors |")
            out.append("|---" * (10 + len(refs)) + "|")
            for name in order:
                rs = list(by.get(name, {}).values())
                if not rs:
                    continue
                rps = [r.rps for r in rs]
                if sc.kind == "h2":
                    lat = f"{med([r.p50_ms for r in rs]):.2f}"
                else:
                    lat = "-" if sc.depth > 1 else f"{med([r.p99_ms for r in rs]):.2f}"
                cols = [ratio(by, name, x, spread=(i == 0 or sc.kind in spread_all)) for i, x in enumerate(refs)]
                bold = refs and name == refs[0]
                out.append(f"| {'**' + name + '**' if bold else name} | {med(rps):,.0f} | "
                           f"{min(rps):,.0f} | {max(rps):,.0f} | {lat} | " + "".join(c + " | " for c in cols)
                           + f"{med([r.cpu_us for r in rs]):.1f} | {med([r.core0 for r in rs]):.0f} | "
                           f"{med([r.core1 for r in rs]):.0f} | {max(r.rss_mib for r in rs):.1f} | "
                           f"{sum(r.errors for r in rs)} |")
        for name in failed:
            err = next(r.error for r in all_runs if r.scenario == sc.name and r.server == name and not r.ok)
            out.append(f"\n{name} failed: {err[:200]}")
    return "\n".join(out) + "\n"


def _tool_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return f"{argv[0]} -"
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().splitlines()[0].split(" [")[0].strip()


def versions(python: str) -> str:
    code = ("import importlib.metadata as m, platform\n"
            "names = ['gworkers', 'gunicorn', 'gunicorn_h1c', 'uvicorn', 'uvicorn-worker', 'granian', 'hypercorn',\n"
            "         'uvloop', 'httptools', 'h11', 'h2', 'zttp', 'websockets', 'wsproto']\n"
            "def v(n):\n"
            "    try:\n        return m.version(n)\n    except Exception:\n        return '-'\n"
            "print(', '.join(f'{n} {v(n)}' for n in names) + ', CPython ' + platform.python_version())\n")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False).stdout.strip()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False, cwd=Path(__file__).resolve().parent).stdout.strip()
    except OSError:  # no git (the interpreters' chroots in .ci/pythons): the versions still print
        commit = ""
    if commit:  # the servers import this checkout (PYTHONPATH), whatever the venv has installed
        out = f"gworkers checkout {commit}, {out}"
    return (f"{out}, {_tool_version(['wrk', '--version'])}, {_tool_version(['h2load', '--version'])}, "
            f"kernel {platform.release()}")
