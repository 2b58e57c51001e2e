"""JSON Lines output keeps each input line's bytes and splices the model's outputs in before its closing brace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from modelfn.batch.job import score_object
from modelfn.loader import LoadedBundle
from modelfn.store.local import LocalStore
from tests.fixtures.models import tiny_onnx_expected

LINES = [
    b'{"x": [1, 2, 3, 4]}',  # json.dumps spacing
    b'{"id":"r1","x":[0.5,-1e2,3.25,4]}',  # compact, exponent
    b'  { "note" : "caf\\u00e9 \xc3\xa9 , }" , "x" : [ 1 , 2 , 3 , 4 ] }   ',  # padding; a brace inside a string
    b'{"x": [1, 2, 3, 4], "meta": {"nested": [1, {"deep": null}]}}',
]


def test_object_lines_keep_their_bytes_and_gain_the_outputs(tiny: LoadedBundle, tmp_path: Path) -> None:
    # GIVEN JSON Lines objects written in different styles
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.jsonl").write_bytes(b"\n".join(LINES) + b"\r\n")
    # WHEN they are scored, two lines per chunk
    outcome = score_object(tiny, LocalStore(tmp_path / "in"), "rows.jsonl", str(tmp_path / "out"), chunk_rows=2)
    out = (tmp_path / "out" / outcome.output_key).read_bytes().splitlines()
    # THEN each output line is its input line up to the closing brace, then the outputs; it parses to the
    # input object plus "y" with the model's predictions
    assert len(out) == len(LINES) == outcome.rows
    x = np.array([json.loads(line)["x"] for line in LINES], dtype=np.float32)
    expected = tiny_onnx_expected(x)
    for line, result, want in zip(LINES, out, expected, strict=True):
        assert result.startswith(line.rstrip()[:-1] + b',"y":[')
        record = json.loads(result)
        assert record == {**json.loads(line), "y": record["y"]}
        np.testing.assert_allclose(record["y"], want, rtol=1e-6, atol=1e-6)


def test_bare_instances_become_instance_records(tiny: LoadedBundle, tmp_path: Path) -> None:
    # GIVEN bare instances (the single input's value), one of them padded with spaces
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.jsonl").write_bytes(b"[1, 2, 3, 4]\n  [5,6,7,8]  \n")
    # WHEN they are scored
    outcome = score_object(tiny, LocalStore(tmp_path / "in"), "rows.jsonl", str(tmp_path / "out"))
    out = (tmp_path / "out" / outcome.output_key).read_bytes().splitlines()
    # THEN each becomes {"instance": <the line's JSON as written>, "y": [...]}
    assert out[0].startswith(b'{"instance":[1, 2, 3, 4],"y":[') and out[1].startswith(b'{"instance":[5,6,7,8],"y":[')
    records = [json.loads(line) for line in out]
    assert [r["instance"] for r in records] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    np.testing.assert_allclose(
        [r["y"] for r in records], tiny_onnx_expected(np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32)), rtol=1e-6
    )
