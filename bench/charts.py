"""PNG charts of the benchmark results (matplotlib, Agg): cold starts, latency CDFs, throughput, package size.

Each chart is drawn from whichever result files exist; ``draw_all`` returns the charts written and,
for each chart it could not draw, the input that was missing (listed in latest.md, never silent).
A benchmark's JSON with ``"servers": {name: {"throughput": {clients: {"requests_per_s": …}}}}``
(bench_peers.py's shape) joins the throughput chart, so e.g. adaptive batching can be drawn beside
the peers by writing that shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

THROUGHPUT_SOURCES = ("peers.json", "batching.json")


Loader = Callable[[str], dict[str, Any] | None]


def _figure(ncols: int = 1, width: float = 6.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, 4.2), squeeze=False)
    return fig, axes[0]


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def coldstart(load: Loader, out: Path) -> Path | str:
    """Bars: Lambda cold start vs the floor per model, and ``modelfn serve`` vs the peers per model."""
    cold, peers = load("coldstart.json"), load("peers.json")
    if not cold and not peers:
        return "no coldstart.json or peers.json"
    panels = [p for p in (cold, peers) if p]
    fig, axes = _figure(len(panels))
    i = 0
    if cold:
        models = list(cold["models"])
        series = {"floor": "floor_ms_p50", "modelfn Lambda handler": "modelfn_ms_p50"}
        if any("reference_floor_ms_p50" in cold["models"][m] for m in models):
            series["reference floor"] = "reference_floor_ms_p50"
        _bars(axes[i], models, {label: [cold["models"][m].get(k) for m in models] for label, k in series.items()})
        axes[i].set_title("Lambda cold start → first verified prediction (p50)")
        i += 1
    if peers:
        ok = {n: s for n, s in peers["servers"].items() if "cold_ms_p50" in s}
        models = sorted({n.rsplit("-", 1)[1] for n in ok})
        systems = sorted({n.rsplit("-", 1)[0] for n in ok}, key=lambda s: (s != "modelfn", s))
        _bars(axes[i], models, {s: [ok.get(f"{s}-{m}", {}).get("cold_ms_p50") for m in models] for s in systems})
        axes[i].set_title("Container: spawn → first answer (p50)")
    return _save(fig, out / "coldstart.png")


def _colors(labels: set[str]) -> dict[str, str]:
    """One colour per system across every panel of a chart (modelfn first)."""
    ordered = sorted(labels, key=lambda label: (not label.startswith("modelfn"), label))
    return {label: f"C{i % 10}" for i, label in enumerate(ordered)}


def _bars(ax: Any, groups: list[str], series: dict[str, list[float | None]]) -> None:
    width = 0.8 / max(1, len(series))
    for k, (label, values) in enumerate(series.items()):
        xs = [g + k * width for g in range(len(groups))]
        ax.bar(xs, [v or 0 for v in values], width, label=label)
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups)
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)


def latency_cdf(load: Loader, out: Path) -> Path | str:
    """Warm sequential keep-alive latency CDF per server, one panel per model."""
    peers = load("peers.json")
    curves = {n: s["warm"]["quantiles_ms"] for n, s in (peers or {}).get("servers", {}).items()
              if s.get("warm", {}).get("quantiles_ms")}  # fmt: skip
    if not curves:
        return "no warm latencies in peers.json"
    models = sorted({n.rsplit("-", 1)[1] for n in curves})
    colors = _colors({n.rsplit("-", 1)[0] for n in curves})
    fig, axes = _figure(len(models))
    for ax, model in zip(axes, models, strict=True):
        for name, qs in sorted(curves.items()):
            if name.endswith(f"-{model}"):
                label = name.rsplit("-", 1)[0]
                ax.plot(qs, [i / (len(qs) - 1) for i in range(len(qs))], label=label, color=colors[label])
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"{model}: warm latency, sequential keep-alive")
        ax.legend(fontsize=8)
    return _save(fig, out / "latency_cdf.png")


def throughput(load: Loader, out: Path) -> Path | str:
    """Requests/s against concurrent clients for every server with a throughput section."""
    lines: dict[str, dict[int, float]] = {}
    for source in THROUGHPUT_SOURCES:
        data = load(source) or {}
        for name, server in (data.get("servers") or {}).items():
            levels = server.get("throughput") if isinstance(server, dict) else None
            if levels:
                lines[name] = {int(c): t["requests_per_s"] for c, t in levels.items()}
        if source == "batching.json":  # bench_batching.py: {"results": {server: {clients: {"rps": …}}}}, its own MLP
            for name, levels in (data.get("results") or {}).items():
                lines[f"{name} (bench_batching)-mlp"] = {int(c): t["rps"] for c, t in levels.items()}
    if not lines:
        return "no throughput in " + " or ".join(THROUGHPUT_SOURCES)
    models = sorted({n.rsplit("-", 1)[-1] for n in lines})
    colors = _colors({n.rsplit("-", 1)[0] for n in lines})
    fig, axes = _figure(len(models))
    for ax, model in zip(axes, models, strict=True):
        for name, points in sorted(lines.items()):
            if name.rsplit("-", 1)[-1] == model:
                xs, label = sorted(points), name.rsplit("-", 1)[0]
                ax.plot(xs, [points[x] for x in xs], marker="o", label=label, color=colors[label])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("requests/s")
        ax.set_title(f"{model}: throughput vs concurrency")
        ax.legend(fontsize=8)
    return _save(fig, out / "throughput.png")


def lambda_package(load: Loader, out: Path) -> Path | str:
    """Stacked bars: the Lambda zip's size per component, unzipped and zipped, per runtime."""
    data = load("lambda_package_x86_64.json")
    if not data:
        return "no lambda_package_x86_64.json"
    fig, axes = _figure(1, width=8)
    ax = axes[0]
    bars = [(f"{rt} {kind}", m["components"], kind) for rt, m in data.items() for kind in ("unzipped", "zipped")]
    top = sorted({c for _, comps, _ in bars for c in comps}, key=lambda c: -max(x[c]["unzipped_mb"] for _, x, _ in
                 [b for b in bars if c in b[1]]))[:7]  # fmt: skip
    for k, (_, comps, kind) in enumerate(bars):
        bottom = 0.0
        for c in [*top, "other"]:
            size = (comps[c][f"{kind}_mb"] if c in comps else 0.0) if c != "other" else sum(
                v[f"{kind}_mb"] for n, v in comps.items() if n not in top)  # fmt: skip
            ax.barh(k, size, left=bottom, color=f"C{([*top, 'other']).index(c)}", label=c if k == 0 else None)
            bottom += size
    ax.set_yticks(range(len(bars)), [b[0] for b in bars])
    ax.axvline(250, color="k", linestyle=":", linewidth=1)
    ax.set_xlabel("MB (dotted: Lambda's 250 MB unzipped limit)")
    ax.set_title("Lambda zip size by component")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out / "lambda_package.png")


CHARTS: dict[str, Callable[[Loader, Path], Path | str]] = {
    "coldstart": coldstart,
    "latency_cdf": latency_cdf,
    "throughput": throughput,
    "lambda_package": lambda_package,
}


def draw_all(results: Path, out: Path, skip: Collection[str] = ()) -> tuple[list[Path], list[tuple[str, str]]]:
    """Draw every chart whose inputs exist; ``skip`` names result files to leave out (stale: their benchmark failed).

    Returns (charts written, [(chart, why it was not drawn)]).
    """

    def load(name: str) -> dict[str, Any] | None:
        path = results / name
        return json.loads(path.read_text()) if path.exists() and name not in skip else None

    out.mkdir(parents=True, exist_ok=True)
    written, missing = [], []
    for name, draw in CHARTS.items():
        result = draw(load, out)
        if isinstance(result, Path):
            written.append(result)
        else:
            (out / f"{name}.png").unlink(missing_ok=True)  # no stale chart beside a "not drawn" line
            missing.append((name, result))
    return written, missing
