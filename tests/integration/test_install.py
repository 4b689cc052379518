"""The wheel is the whole tool: built from this checkout, installed into a fresh
venv outside it, it runs the README's `podplug` lines as written from an empty
directory, and its operator runs as uid 65532 with no passwd entry (as the
image runs it)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from oci_testbed import Registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
from docblocks import blocks

ROOT = Path(__file__).resolve().parents[2]
#: Debian's interpreter: unlike the dev one under /root, uid 65532 can run it
BASE_PYTHON = "/usr/bin/python3"
IMAGE_UID = 65532


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    #: what building the wheel printed
    build_log: str
    #: a world-readable scratch folder (what uid 65532 can reach)
    scratch: Path


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    scratch = Path(tempfile.mkdtemp(prefix="podplug-wheel-"))
    scratch.chmod(0o755)
    try:
        # From a copy without build output: setuptools' build/ would carry stale files.
        src = scratch / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "node_modules", "target", "__pycache__", "*.egg-info"))
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                                str(scratch / "dist"), str(src)], check=True,
                               capture_output=True, text=True)
        (wheel,) = (scratch / "dist").glob("podplug-*.whl")
        venv = scratch / "venv"
        subprocess.run([BASE_PYTHON, "-m", "venv", str(venv)], check=True)
        # The wheel from disk, its dependencies from PyPI (pip's cache when warm).
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True,
                       capture_output=True)
        yield Installed(wheel, venv, built.stdout + built.stderr, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_the_wheel_carries_the_tool_and_nothing_of_the_checkout_besides(
    installed: Installed
) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    for needed in ("podplug/sdk/rust/template/Cargo.toml", "podplug/sdk/rust/src/lib.rs",
                   "podplug/sdk/assemblyscript/template/package.json",
                   "podplug/sdk/assemblyscript/scripts/metadata.js",
                   "podplug/plugins/lws-standard-labels/lws-standard-labels.wasm",
                   "podplug/plugins/nvidia-gpu-defaults/nvidia-gpu-defaults.wasm",
                   "podplug/controlplane/build.sh", "podplug/controlplane/versions.env",
                   "podplug/crds/modelservings.workload.serving.volcano.sh.yaml",
                   "podplug-0.1.0.dist-info/licenses/LICENSE"):
        assert needed in names, needed
    shipped = {p.name for p in (ROOT / "plugins-wasm").glob("*/*.wasm")}
    assert {Path(n).name for n in names if n.startswith("podplug/plugins/")
            and n.endswith(".wasm")} == shipped
    junk = [n for n in names if re.search(r"node_modules|/target/|sdk/[a-z]+/tests?/|testdata|"
                                          r"conformance|testplugin|__pycache__|\.cwasm$", n)]
    assert junk == []
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]


def test_every_folder_the_wheel_ships_is_declared_to_setuptools(installed: Installed) -> None:
    # A data folder setuptools finds importable but undeclared is shipped today
    # with a warning, and "would be ignored" by a later setuptools.
    assert re.findall(r"Package '([^']+)' is absent", installed.build_log) == []


def readme_lines() -> list[str]:
    """The `podplug` block of README.md, one command a line, comments dropped."""
    (block,) = [b for b in blocks(ROOT / "README.md") if b.body.startswith("podplug --version")]
    return [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.body.splitlines()
            if line.strip()]


def test_the_readme_lines_run_as_written_from_an_installed_wheel(
    installed: Installed, registry: Registry, tmp_path: Path
) -> None:
    work = installed.scratch / "work"
    work.mkdir(mode=0o755)
    # The user's own ModelServing file; the README renders the project's example.
    shutil.copytree(ROOT / "examples", work / "examples")
    lines = [line.replace("registry.example.com", registry.host) for line in readme_lines()]
    verbs = {line.split()[1] for line in lines if line.startswith("podplug ")}
    assert verbs == {"--version", "new", "build", "test", "run", "bench", "inspect", "render",
                     "push", "pull", "dev-cluster", "operator"}
    operator_at = lines.index("podplug operator")
    state = installed.scratch / "dev-cluster"
    env = {**os.environ, "PATH": f"{installed.venv / 'bin'}:{os.environ['PATH']}",
           # the test registry's CA and credentials, as `docker login` would leave them
           "SSL_CERT_FILE": str(registry.ca_file),
           "DOCKER_CONFIG": str(registry.docker_config.parent),
           "PODPLUG_DEV_CLUSTER_DIR": str(state)}
    env.pop("VIRTUAL_ENV", None)
    try:
        before = shell(lines[:operator_at], work, env)
        assert "1 passed, 0 failed" in before
        assert f"{registry.host}/team-a/shm-defaults:0.1.0@sha256:" in before
        assert (work / "shm.wasm").read_bytes() == (
            work / "shm-defaults" / "shm-defaults.wasm").read_bytes()
        assert "kind: Pod" in before and "nvidia-gpu-defaults" in before  # render's output
        kubeconfig = json.loads((state / "state.json").read_text())["kubeconfig"]
        run_operator_as_the_image_user(installed, Path(kubeconfig), tmp_path)
    finally:
        after = shell(lines[operator_at + 1:], work, env)
    assert "dev cluster stopped" in after


def shell(lines: list[str], cwd: Path, env: dict[str, str]) -> str:
    script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
    done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, (done.stdout[-3000:] + done.stderr[-4000:])
    return done.stdout + done.stderr


def run_operator_as_the_image_user(installed: Installed, kubeconfig: Path,
                                   tmp_path: Path) -> None:
    """`podplug operator` as uid 65532, which has no passwd entry here, with the
    Deployment's environment and nothing else (no HOME, USER or LOGNAME): it
    reconciles a ModelServing whose plugin is a shipped module from the wheel."""
    with pytest.raises(KeyError):
        __import__("pwd").getpwuid(IMAGE_UID)  # the point of the test
    readable = installed.scratch / "kubeconfig"
    shutil.copyfile(kubeconfig, readable)
    readable.chmod(0o644)
    cache = installed.scratch / "operator-cache"
    cache.mkdir()
    os.chown(cache, IMAGE_UID, IMAGE_UID)
    config.load_kube_config(str(kubeconfig))
    api = client.ApiClient()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    core.create_namespace({"metadata": {"name": "wheel"}})
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(installed.venv / "bin" / "podplug"), "operator", "-n", "wheel",
             "--metrics-port", "0"],
            env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(readable),
                 "PODPLUG_CACHE_DIR": str(cache)},
            cwd="/", user=IMAGE_UID, group=IMAGE_UID, extra_groups=[], stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ms: dict[str, Any] = {
            "apiVersion": "workload.serving.volcano.sh/v1alpha1", "kind": "ModelServing",
            "metadata": {"name": "small"},
            "spec": {"replicas": 1, "plugins": [{"name": "lws-standard-labels"}],
                     "template": {"roles": [{"name": "server", "replicas": 1,
                                             "workerReplicas": 0, "entryTemplate": {
                                                 "spec": {"containers": [{
                                                     "name": "engine", "image": "vllm"}]}}}]}}}
        custom.create_namespaced_custom_object("workload.serving.volcano.sh", "v1alpha1",
                                               "wheel", "modelservings", ms)
        deadline = time.monotonic() + 60
        pods: list[Any] = []
        while not pods and time.monotonic() < deadline and proc.poll() is None:
            pods = core.list_namespaced_pod("wheel").items
            time.sleep(0.3)
        assert pods, f"no Pod; the operator said:\n{log.read_text()[-4000:]}"
        audit = json.loads(pods[0].metadata.annotations["podplug.io/plugins"])
        shipped = ROOT / "plugins-wasm" / "lws-standard-labels" / "lws-standard-labels.wasm"
        assert audit[0]["plugin"] == "lws-standard-labels"
        assert audit[0]["digest"].removeprefix("sha256:") == hashlib.sha256(
            shipped.read_bytes()).hexdigest()
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "getpwuid" not in log.read_text()


def test_an_assemblyscript_scaffold_builds_and_passes_its_fixture_from_the_wheel(
    installed: Installed
) -> None:
    work = installed.scratch / "as"
    work.mkdir()
    env = {**os.environ, "PATH": f"{installed.venv / 'bin'}:{os.environ['PATH']}"}
    out = shell(["podplug new shm-as --lang assemblyscript", "podplug build shm-as",
                 "podplug test shm-as/shm-as.wasm --cases shm-as/cases"], work, env)
    assert "1 passed, 0 failed" in out
