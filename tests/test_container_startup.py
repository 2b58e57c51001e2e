"""What `modelfn serve` does to its own process while it starts: OpenBLAS's idle wait, garbage collection.

Both exist for cold start (bench/seed_systems/profile_serve.py); the tests show an operator's own
OpenBLAS setting wins, and that collection is back on, with the start's objects frozen, once the
server's modules are in. Each runs in a fresh interpreter: freezing the test process's objects
would change how the rest of the suite collects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelfn.container import BLAS_SPIN_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize(("preset", "expected"), [(None, "4"), ("12", "12")])
def test_openblas_threads_stop_spinning_unless_the_operator_says_otherwise(preset: str | None, expected: str) -> None:
    # GIVEN a fresh process, with or without the operator's own OPENBLAS_THREAD_TIMEOUT
    env = {k: v for k, v in os.environ.items() if k != BLAS_SPIN_ENV}
    if preset is not None:
        env[BLAS_SPIN_ENV] = preset
    code = """
import json, os, sys
from modelfn.container import BLAS_SPIN_ENV, _quiet_blas_spin
_quiet_blas_spin()
import numpy  # OpenBLAS reads the variable here, once
print(json.dumps({"value": os.environ.get(BLAS_SPIN_ENV)}))
"""
    # WHEN the server's start sets it before numpy loads
    result = _run(code, env)
    # THEN numpy's OpenBLAS got the shortest idle wait, or the operator's value untouched
    assert result["value"] == expected


def test_the_start_collects_again_with_its_objects_frozen() -> None:
    # GIVEN a fresh process that imports the server's modules inside the start's window
    code = """
import gc, json
from modelfn.gc_pause import collections_paused
with collections_paused(keep_frozen=True):  # as the container's start runs it
    during = gc.isenabled()
    import uvicorn
    from modelfn.serving.asgi import create_app
print(json.dumps({"during": during, "after": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""
    # WHEN the window closes
    result = _run(code, dict(os.environ))
    # THEN no collection ran inside it, collection is back on, and what the imports made is frozen
    assert result["during"] is False
    assert result["after"] is True
    assert isinstance(result["frozen"], int) and result["frozen"] > 10_000
