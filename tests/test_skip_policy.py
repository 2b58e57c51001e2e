"""The CI skip policy (tests/fixtures/skips.py): under ``CI`` every kind of skip fails the run; xfail is untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = """
import pytest

def test_passes():
    assert True

def test_skips_inside():
    pytest.skip("no GPU here")

@pytest.fixture
def needs_env():
    pytest.skip("MODELFN_TEST_SOMETHING is not set")

def test_skips_in_fixture(needs_env):
    pass

@pytest.mark.skipif(True, reason="marked off")
def test_skip_marker():
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_xfails():
    assert False
"""
MODULE_SKIP = 'import pytest\n\npytest.importorskip("modelfn_no_such_framework")\n\ndef test_never_runs():\n    pass\n'


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "test_module_skip.py").write_text(MODULE_SKIP)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env |= {"PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.fixtures.skips", "-p", "no:cacheprovider", "-rA"]
        + ["--continue-on-collection-errors", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("ci", ["true"])
def test_under_ci_every_skip_is_a_failure_naming_its_reason(tmp_path: Path, ci: str) -> None:
    # GIVEN tests that skip in the body, in a fixture, by marker and at module level, and one xfail
    # WHEN pytest runs them with CI set
    result = _run(tmp_path, ci)
    # THEN the run fails: the skip in the body is a failure; the ones in setup (fixture, marker) and at
    # collection are errors; each quotes its reason, none is reported skipped, the xfail stays an xfail
    assert result.returncode == 1, result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert "1 failed" in summary and "3 errors" in summary and "1 passed" in summary and "1 xfailed" in summary
    assert "skipped" not in summary
    for reason in ("no GPU here", "MODELFN_TEST_SOMETHING is not set", "marked off", "modelfn_no_such_framework"):
        assert reason in result.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_without_ci_skips_stay_skips(tmp_path: Path, ci: str | None) -> None:
    # GIVEN the same tests WHEN run without CI (or CI=false) THEN they skip as usual and the run passes
    result = _run(tmp_path, ci)
    assert result.returncode == 0, result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert "4 skipped" in summary and "1 passed" in summary and "1 xfailed" in summary
