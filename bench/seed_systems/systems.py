"""Each seed system as its users run it, and modelfn serving the same model (`package` -> `push` -> `serve`).

A ``System`` says which environment runs it, which builder makes its model, how to start it on
given ports, where to POST and what. The model builders write under ``WORK/models/<model>/``;
``prepare`` makes what a system needs besides (its .mar archive, config files).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from envs import python_of

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("MODELFN_BENCH_SEED_WORK", HERE.parents[1] / "bench" / "results" / "seed_systems"))
APPS = HERE / "apps"
PAYLOADS = HERE / "payloads"


@dataclasses.dataclass(frozen=True)
class System:
    """One served system; ``cmd(ports)`` is a shell command, run in its own session from ``WORK``."""

    name: str
    env: str  # environment in envs.REQUIREMENTS
    model: str  # builder in builders/mk_<model>.py, run in ``env``
    cmd: Callable[[list[int]], str]
    path: str  # URL path of the prediction route
    payload: str  # payloads/<payload>.json
    n_ports: int = 1
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)
    netns: bool = False  # binds 0.0.0.0: run server and client in a private network namespace
    warm_n: int = 500
    prepare: Callable[[], None] | None = None


def model_dir(model: str) -> Path:
    return WORK / "models" / model


def _py(env: str) -> str:
    return str(python_of(env))


def _mms_prepare() -> None:
    store = WORK / "stores" / "mms"
    if (store / "mlp.mar").exists():
        return
    store.mkdir(parents=True, exist_ok=True)
    src = model_dir("mx")
    shutil.copy(APPS / "mms_handler.py", src / "mms_handler.py")
    archiver = Path(_py("mms")).parent / "model-archiver"
    subprocess.run(
        [str(archiver), "--model-name", "mlp", "--model-path", str(src), "--handler", "mms_handler:handle",
         "--runtime", "python3", "--export-path", str(store), "-f"], check=True,
    )  # fmt: skip


def _ts_prepare() -> None:
    store = WORK / "stores" / "ts"
    if (store / "mlp.mar").exists():
        return
    store.mkdir(parents=True, exist_ok=True)
    archiver = Path(_py("torchserve")).parent / "torch-model-archiver"
    pt = model_dir("torch") / "mlp.pt"
    subprocess.run(
        [str(archiver), "--model-name", "mlp", "--version", "1.0", "--serialized-file", str(pt),
         "--handler", str(APPS / "ts_handler.py"), "--export-path", str(store), "-f"], check=True,
    )  # fmt: skip


def _properties(name: str, lines: list[str]) -> Path:
    path = WORK / f"{name}.properties"
    path.write_text("\n".join(lines) + "\n")
    return path


def _mms_cmd(ports: list[int]) -> str:
    conf = _properties("mms", [f"inference_address=http://127.0.0.1:{ports[0]}",
                               f"management_address=http://127.0.0.1:{ports[1]}",
                               "default_workers_per_model=1"])  # fmt: skip
    tmp = WORK / "tmp_mms"
    tmp.mkdir(exist_ok=True)
    server = Path(_py("mms")).parent / "multi-model-server"
    # MMS refuses to start while its pid file names a live pid (the not-yet-reaped Java of the last run)
    return (f"rm -f {tmp}/.model_server.pid; TMPDIR={tmp} PATH={server.parent}:/usr/bin:/bin exec {server} --start"
            f" --foreground --mms-config {conf} --model-store {WORK}/stores/mms --models mlp=mlp.mar")  # fmt: skip


def _ts_cmd(ports: list[int]) -> str:
    conf = _properties("ts", [f"inference_address=http://127.0.0.1:{ports[0]}",
                              f"management_address=http://127.0.0.1:{ports[1]}",
                              f"metrics_address=http://127.0.0.1:{ports[2]}", "default_workers_per_model=1",
                              "disable_token_authorization=true"])  # fmt: skip
    tmp = WORK / "tmp_ts"
    tmp.mkdir(exist_ok=True)
    server = Path(_py("torchserve")).parent / "torchserve"
    return (
        f"TMPDIR={tmp} PATH={server.parent}:/usr/bin:/bin exec {server} --start --foreground --ncs"
        f" --disable-token-auth --ts-config {conf} --model-store {WORK}/stores/ts --models mlp=mlp.mar"
    )


def _flask(env: str, app: str, model_file: str, extra: str = "") -> Callable[[list[int]], str]:
    return lambda ports: (f"PORT={ports[0]} MODEL={WORK / 'models' / model_file} {extra} "
                          f"exec {_py(env)} {APPS / app}")  # fmt: skip


def _kserve_cmd(ports: list[int]) -> str:
    model = WORK / "models" / "sk" / "rf.joblib"
    return f"PORT={ports[0]} GRPC_PORT={ports[1]} MODEL={model} exec {_py('kserve')} {APPS / 'kserve_app.py'}"


SYSTEMS: dict[str, System] = {
    s.name: s
    for s in [
        System("mms", "mms", "mx", _mms_cmd, "/predictions/mlp", "mlp", n_ports=2, prepare=_mms_prepare),
        System("torchserve", "torchserve", "torch", _ts_cmd, "/predictions/mlp", "mlp", n_ports=3, prepare=_ts_prepare),
        System("keras_flask", "keras_flask", "keras", _flask("keras_flask", "keras_app.py", "keras/mlp.keras"),
               "/predict", "mlp", warm_n=200),
        System("keras_flask_call", "keras_flask", "keras",
               _flask("keras_flask", "keras_app.py", "keras/mlp.keras", "KERAS_CALL=1"), "/predict", "mlp"),
        System("sk_flask", "sk_flask", "sk", _flask("sk_flask", "sk_app.py", "sk/rf.joblib"), "/predict", "rf"),
        System("kserve", "kserve", "sk", _kserve_cmd, "/v1/models/rf:predict", "rf_kserve", n_ports=2, netns=True),
        System("spark_flask", "spark_flask", "spark", _flask("spark_flask", "spark_app.py", "spark/pipeline"),
               "/predict", "spark", warm_n=100),
    ]
}  # fmt: skip
"""The seed's systems; ``keras_flask_call`` is the Keras app calling the model directly (the fair Keras row)."""

MODELFN_PACKAGE: dict[str, list[str]] = {
    "mx": ["mlp-symbol.json", "--params", "mlp-0000.params", "--framework", "mxnet", "--python", "{mms_python}"],
    "torch": ["mlp.pt", "--allow-pickle"],
    "keras": ["mlp.keras"],
    "sk": ["rf.joblib", "--allow-pickle"],
    "spark": ["pipeline", "--sample", "sample.npz"],
}
"""Model -> `modelfn package` arguments (relative to its model folder): the system's own artifact, unchanged."""

MODELFN_NAME = {"mx": "mlp-mx", "torch": "mlp-torch", "keras": "mlp-keras", "sk": "rf", "spark": "spark-lr"}


def modelfn_payload(system: System) -> bytes:
    """The system's request as modelfn's /predict takes it (the same numbers)."""
    data = json.loads((PAYLOADS / f"{system.payload}.json").read_text())
    row = data["instances"][0] if "instances" in data else data["data"]
    if system.model == "spark":
        return json.dumps({"instances": [{f"f{i}": v for i, v in enumerate(row)}]}).encode()
    return json.dumps({"instances": [row]}).encode()


def build_model(model: str, env: str) -> Path:
    """Run builders/mk_<model>.py in ``env`` once; its files land in WORK/models/<model>/."""
    out = model_dir(model)
    if (out / ".done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([_py(env), str(HERE / "builders" / f"mk_{model}.py"), str(out)], check=True, cwd=out)
    (out / ".done").write_text("")
    return out


def modelfn_cli() -> list[str]:
    """`modelfn` of the interpreter running the bench (modelfn's own environment)."""
    return [sys.executable, "-c", "from modelfn._entry import main; main()"]


def publish(model: str) -> dict[str, str]:
    """`modelfn keygen` (once) -> `package` -> `sign` -> `push` to a local store; the serve arguments."""
    store, keys = WORK / "store", WORK / "keys"
    name = MODELFN_NAME[model]
    serve = {"store": f"file://{store}", "model": name, "trust": str(keys / "signing.pub")}
    if (store / name / "1" / "model.sig").exists():
        return serve
    cli = modelfn_cli()
    if not (keys / "signing.key").exists():
        subprocess.run([*cli, "keygen", "--out", str(keys)], check=True)
    src, bundle = model_dir(model), WORK / "bundles" / name
    shutil.rmtree(bundle, ignore_errors=True)
    args = [a.format(mms_python=_py("mms")) for a in MODELFN_PACKAGE[model]]
    if "--sample" not in args:
        args += ["--sample", "sample.npy"]
    subprocess.run([*cli, "package", *args, "--out", str(bundle), "--name", name], check=True, cwd=src)
    subprocess.run([*cli, "sign", str(bundle), "--key", str(keys / "signing.key")], check=True)
    subprocess.run([*cli, "push", str(bundle), "--store", serve["store"]], check=True)
    return serve
