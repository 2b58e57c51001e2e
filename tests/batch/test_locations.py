"""The one containment rule for batch locations: a result may never land where a trigger or run reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfn.batch.locations import contains


@pytest.mark.parametrize(
    ("outer", "inner", "inside"),
    [
        ("s3://b/in", "s3://b/in/out", True),
        ("s3://b", "s3://b/results", True),  # a whole bucket contains every prefix of it
        ("s3://b/in", "s3://b/input", False),  # a longer name is not a child
        ("s3://b/in", "s3://c/in/out", False),
        ("s3://b/in/", "s3://b/in", True),
    ],
)
def test_s3_containment(outer: str, inner: str, inside: bool) -> None:
    assert contains(outer, inner) is inside


def test_local_paths_file_urls_and_links_are_one_location(tmp_path: Path) -> None:
    # GIVEN a folder, a symlink to it and a percent-encoded file:// URL of a child
    (tmp_path / "in dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "in dir")
    # THEN each names the same place
    assert contains(str(tmp_path / "link"), (tmp_path / "in dir" / "out").as_uri())
    assert contains(f"file://{tmp_path}/in%20dir", str(tmp_path / "in dir" / "x"))
    assert not contains(str(tmp_path / "in dir"), str(tmp_path / "in dir2"))
