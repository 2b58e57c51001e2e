"""Train the shapes CNN, write what packaging needs, and package it with its image pipeline and labels.

Run: ``python examples/image-classifier/train_and_package.py [OUT_DIR]`` (needs
``pip install 'modelfn[torch,images]'``). Writes into OUT_DIR (default ``build/image-example``):
``shapes.safetensors`` (weights, no pickle), ``labels.txt``, ``samples/`` (60 generated PNG and
JPEG pictures for the parity check), ``test/`` (a picture of each shape to send), then runs
``modelfn package`` with ``--preprocess``, ``--labels`` and ``--reference-preprocess`` into
``OUT_DIR/bundle`` and prints the commands that sign, push, serve and call it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import shapes  # noqa: E402  (beside this script)

PREPROCESS = (
    f"image:size={shapes.SIZE},resize={shapes.RESIZE},"
    f"mean={','.join(map(str, shapes.MEAN))},std={','.join(map(str, shapes.STD))},layout=NCHW"
)


def write_inputs(out: Path, seed: int = 0) -> None:
    """Weights, labels, parity samples and test pictures."""
    model = shapes.train(seed)
    save_file(model.state_dict(), out / "shapes.safetensors")
    (out / "labels.txt").write_text("\n".join(shapes.LABELS) + "\n")
    rng = random.Random(seed + 1)
    for folder, count in (("samples", 60), ("test", len(shapes.LABELS))):
        (out / folder).mkdir(exist_ok=True)
        for i in range(count):
            label = i % len(shapes.LABELS)
            picture = shapes.draw(label, rng)
            fmt, ext = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
            (out / folder / f"{shapes.LABELS[label]}-{i:02d}.{ext}").write_bytes(shapes.encode(picture, fmt))


def package_command(out: Path) -> list[str]:
    """``modelfn package`` with the image pipeline, labels, softmax and the reference preprocessing."""
    return [
        "modelfn", "package", str(out / "shapes.safetensors"),
        "--out", str(out / "bundle"), "--name", "shapes",
        "--option", "model_class=shapes:ShapesNet",
        "--sample", str(out / "samples"),
        "--preprocess", PREPROCESS,
        "--labels", str(out / "labels.txt"), "--softmax", "--top-k", "3",
        "--reference-preprocess", "shapes:reference_preprocess",
    ]  # fmt: skip


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_inputs(out)
    command = package_command(out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    print("$ PYTHONPATH=examples/image-classifier " + " ".join(command))
    subprocess.run(command, check=True, env=env)
    print("next steps:")
    print("  modelfn keygen --out .modelfn/keys")
    print(f"  modelfn sign {out / 'bundle'} --key .modelfn/keys/signing.key")
    print(f"  modelfn push {out / 'bundle'} --store .modelfn/store")
    print("  modelfn serve --model shapes --store .modelfn/store --trust .modelfn/keys/signing.pub &")
    picture = next((out / "test").glob("*.png"))
    print(f"  curl -s -H 'content-type: image/png' --data-binary @{picture} http://127.0.0.1:8080/predict")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/image-example"))
