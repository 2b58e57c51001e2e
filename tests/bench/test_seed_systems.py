"""bench/seed_systems: ratios and table from measured sides, the CPU reading, and the command line.

The full head-to-head needs each system's environment (minutes to build); these tests cover the
harness's own logic on real processes and data, and run.py as users run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "seed_systems"))

import run  # noqa: E402


def _result(cold: list[float], cpu: list[float], p50: float, p99: float) -> dict[str, object]:
    side = run.Side("x", "true", "/", b"", 1, 0)
    side.cold_ms, side.cold_cpu_ms = cold, cpu
    side.warm = [p50] * 98 + [p99] * 2
    return side.summary()


def test_ratios_are_system_over_modelfn_and_the_table_shows_them() -> None:
    # GIVEN a system three times slower cold and six times slower warm than modelfn
    system = _result([1200.0, 900.0, 1500.0], [1000.0, 1100.0, 900.0], 6.0, 9.0)
    modelfn = _result([400.0, 300.0, 500.0], [300.0, 250.0, 350.0], 1.0, 2.0)
    # WHEN the ratios and the table are made
    ratios = run.ratios(system, modelfn)
    table = run.table({"sk_flask": {"system": system, "modelfn": modelfn, "ratios": ratios}})
    # THEN medians are compared (not means or single runs), as system ÷ modelfn
    assert ratios == {"cold": 3.0, "cold_cpu": 3.33, "warm_p50": 6.0, "warm_p99": 4.5}
    assert "| sk_flask | 1200.0 (1200.0, 900.0, 1500.0) | 400.0 (400.0, 300.0, 500.0) | **3.0×** |" in table
    assert "**6.0×** |" in table


def test_session_cpu_counts_a_busy_process_and_its_children() -> None:
    # GIVEN a server-like process that burns CPU in a child it starts
    burn = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'sum(range(30_000_000))']); input()"
    proc = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        cpu = 0.0
        while cpu < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
            cpu = run.session_cpu_ms(proc.pid)
        # THEN its session's CPU time includes the reaped child's
        assert cpu >= 100
    finally:
        run.stop(proc)
    # AND stop() leaves nothing of the session running
    assert run._session_pids(proc.pid) == []


def test_unknown_system_is_refused_with_the_list() -> None:
    # GIVEN a misspelt system name
    # WHEN run.py is started as users start it
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "seed_systems" / "run.py"), "--only", "sk-flask"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MODELFN_BENCH_RESULTS": "/nonexistent"},
    )
    # THEN it exits non-zero naming the systems it knows, before building anything
    assert done.returncode != 0
    assert "sk-flask" in done.stderr and "sk_flask" in done.stderr and "kserve" in done.stderr
