"""The cold-start floor: the least a hand-written Lambda function must do to serve a signed model.

Runs in a fresh interpreter (bench/floor.py spawns it): import onnxruntime (+ numpy) and boto3, one S3
GET of the model, SHA-256 of the bytes against the expected digest, Ed25519 verification of the
signature over that digest, an onnxruntime session from the bytes, and one batch-1 prediction. No
framework, no manifest, no listing: anything modelfn does beyond this is its overhead.

argv: endpoint bucket key sha256_hex signature_hex public_key_hex input_shape (comma separated).
Prints one JSON line: per-step milliseconds (``steps_ms``; ``steps_cpu_ms``: process CPU time of each
step) and the in-process total.
"""

import time

T0 = time.perf_counter()
C0 = time.process_time()
import json  # noqa: E402
import sys  # noqa: E402

steps: dict[str, float] = {}
steps_cpu: dict[str, float] = {}
_last = [T0, C0]


def step(name: str) -> None:
    now, cpu = time.perf_counter(), time.process_time()
    steps[name] = round((now - _last[0]) * 1e3, 3)
    steps_cpu[name] = round((cpu - _last[1]) * 1e3, 3)
    _last[:] = [now, cpu]


import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402

step("import onnxruntime+numpy")
import boto3  # noqa: E402

step("import boto3")
import hashlib  # noqa: E402

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

step("import hashlib+cryptography")
endpoint, bucket, key, sha_hex, sig_hex, pub_hex, shape = sys.argv[1:8]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
step("boto3 client")
blob = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
step("S3 GET")
digest = hashlib.sha256(blob).digest()
if digest.hex() != sha_hex:
    raise SystemExit("sha256 mismatch")
step("sha256")
Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub_hex)).verify(bytes.fromhex(sig_hex), digest)
step("Ed25519 verify")
session = onnxruntime.InferenceSession(blob, providers=["CPUExecutionProvider"])
step("session")
x = np.random.default_rng(0).standard_normal((1, *map(int, shape.split(","))), dtype=np.float32)
session.run(None, {session.get_inputs()[0].name: x})
step("first predict")
total_ms = round((time.perf_counter() - T0) * 1e3, 3)
print(json.dumps({"steps_ms": steps, "steps_cpu_ms": steps_cpu, "in_process_ms": total_ms, "bytes": len(blob)}))
