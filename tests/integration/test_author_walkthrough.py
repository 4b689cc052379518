"""docs/plugin-authors.md as written, in both languages, from an empty folder to
a Pod on the real API server carrying the plugin's mutation.

The steps are the guide's own code blocks, in order, so the guide cannot drift
from the code: each ``sh`` block runs in bash in the test's empty folder, and a
block marked ``<!-- walkthrough: LANGS file PATH -->`` is written to PATH, as
the guide tells the reader to. ``<!-- walkthrough: rust -->`` (or
``assemblyscript``) limits a block to one language, ``skip (why)`` marks the
few that cannot run here, and the two blocks marked ``after ...`` are the
update flow, which runs once the test has edited the plugin and once it has
put the new digest in the ModelServing, as the guide says a reader does. The
markers are read by tests/docs/docblocks.py, which tests/docs/test_docs.py
shares to run or check the blocks of every other document (and the guide's
illustrative fragments, which this test does not run).

What the test does that the reader does by hand: ``podplug`` and ``kubectl``
on PATH, a kubeconfig whose namespace is the test's, ``--lang rust`` becomes
``--lang assemblyscript`` for the second language, ``<the digest above>``
becomes the digest ``sha256sum`` printed, and the operator runs with the
shipped policy, namespace modules allowed (the guide's premise).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from test_operator import Operator, condition, eventually, ms_status, pods

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
from docblocks import LANGS, Block, blocks, marker_problems

from podplug.devcluster.cluster import LocalCluster
from podplug.devcluster.pods import events_for

pytestmark = [pytest.mark.integration, pytest.mark.sdk]

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugin-authors.md"
EDIT = "after an edit of the plugin"
REPIN = "after the new digest is in shm-serving.yaml"
POD = "qwen-shm-0-decode-0-0"


def guide_blocks() -> list[Block]:
    """The guide's blocks that a reader acts on: shell commands and files to write
    (yaml, rust, ts fragments without a file marker only illustrate; tests/docs
    checks those)."""
    return [b for b in blocks(GUIDE) if b.tag == "sh" or b.file]


def test_the_guide_marks_every_block_it_does_not_run_with_a_reason() -> None:
    assert marker_problems(GUIDE) == []
    found = guide_blocks()
    for b in found:
        assert b.phase in ("", EDIT, REPIN), b.mark
    for lang in LANGS:
        files = {b.file for b in found if b.runs_for(lang) and b.file}
        assert "shm-defaults/cases/entry.yaml" in files and "shm-serving.yaml" in files
    assert [b.phase for b in found if b.phase] == [EDIT, REPIN]


class Reader:
    """Runs the guide's blocks for one language in one folder, timing each."""

    def __init__(self, lang: str, work: Path, env: dict[str, str]) -> None:
        self.lang, self.work, self.env = lang, work, env
        self.out: list[str] = []
        self.ran: list[tuple[Block, str]] = []
        self.times: list[tuple[str, float]] = []

    def act(self, block: Block) -> str:
        start = time.monotonic()
        if block.file:
            path = self.work / block.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.body.replace("<the digest above>", self.digest()))
            what = f"write {block.file}"
            out = ""
        else:
            script = block.body.replace("--lang rust", f"--lang {self.lang}")
            done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=self.work,
                                  env=self.env, capture_output=True, text=True, timeout=600)
            out = done.stdout + done.stderr
            assert done.returncode == 0, f"$ {script}\n{out[-4000:]}"
            what = script.strip().splitlines()[0]
        self.times.append((what, time.monotonic() - start))
        self.out.append(out)
        self.ran.append((block, out))
        return out

    def last(self, command: str) -> tuple[Block, str]:
        """The last block run that has ``command``, and its output."""
        return next((b, out) for b, out in reversed(self.ran) if command in b.body)

    def digest(self) -> str:
        wasm = self.work / "shm-defaults" / "shm-defaults.wasm"
        return hashlib.sha256(wasm.read_bytes()).hexdigest() if wasm.exists() else ""


def shipped_policy_with_namespace_modules(path: Path) -> Path:
    shipped = yaml.safe_load((ROOT / "deploy" / "operator" / "policy.yaml").read_text())
    policy = yaml.safe_load(shipped["data"]["policy.yaml"])
    assert policy["namespacePlugins"] == {"allowed": False, "requireSha256": True}
    policy["namespacePlugins"]["allowed"] = True
    path.write_text(yaml.safe_dump(policy))
    return path


def reader_env(cluster: LocalCluster, kubectl: Path, namespace: str, tmp_path: Path
               ) -> dict[str, str]:
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copyfile(cluster.kubeconfig, kubeconfig)
    subprocess.run([str(kubectl), "config", "set-context", "--current", "--namespace",
                    namespace, "--kubeconfig", str(kubeconfig)], check=True,
                   capture_output=True)
    path = os.pathsep.join([str(Path(sys.executable).parent), str(kubectl.parent),
                            os.environ["PATH"]])
    return {**os.environ, "PATH": path, "KUBECONFIG": str(kubeconfig)}


def volumes(pod: dict[str, Any]) -> dict[str, Any]:
    return {v["name"]: v for v in pod["spec"].get("volumes") or []}


@pytest.mark.parametrize("lang", LANGS)
def test_the_guide_takes_a_plugin_from_an_empty_folder_to_a_mutated_pod(
    lang: str, cluster: LocalCluster, kubectl: Path, namespace: str, core: client.CoreV1Api,
    custom: client.CustomObjectsApi, tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    reader = Reader(lang, work, reader_env(cluster, kubectl, namespace, tmp_path))
    plugins = tmp_path / "plugins"  # the operator's plugin directory: not this plugin's way in
    plugins.mkdir()
    operator = Operator(cluster, namespace, plugins,
                        shipped_policy_with_namespace_modules(tmp_path / "policy.yaml"),
                        tmp_path / "operator.log")
    steps = [b for b in guide_blocks() if b.runs_for(lang)]
    operator.start()
    try:
        started = time.monotonic()
        for block in (b for b in steps if not b.phase):
            reader.act(block)
            if block.file == "shm-serving.yaml":
                to_configmap = time.monotonic() - started
        text = "\n".join(reader.out)
        assert "PASS the serving container gets /dev/shm" in text and "1 passed, 0 failed" in text
        # The guide's `kubectl get` prints what the comment under it says.
        block, out = reader.last("kubectl get pod")
        assert out.strip().endswith(block.body.strip().splitlines()[-1].removeprefix("# "))
        # ... and `podplug bench` counts the ops its sample output says.
        block, out = reader.last("podplug bench")
        said = re.search(r"request \d+ bytes, \d+ ops", block.body)
        assert said and said[0] in out, out
        pod = pods(core, namespace)[POD]
        ran = json.loads(pod["metadata"]["annotations"]["podplug.io/plugins"])
        assert ran == [{"plugin": "shm", "digest": f"sha256:{reader.digest()}", "ops": 2}]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in pod["spec"]["containers"][0][
            "volumeMounts"]

        # A new build: the reader's edit, then the ConfigMap replaced under the old pin.
        source = work / "shm-defaults" / ("src/lib.rs" if lang == "rust" else "assembly/index.ts")
        source.write_text(source.read_text().replace('"dshm"', '"devshm"'))
        old = reader.digest()
        reader.act(next(b for b in steps if b.phase == EDIT))
        assert reader.digest() != old and reader.digest() in reader.out[-1]
        cond = eventually(lambda: (c := condition(ms_status(custom, namespace, "qwen-shm"),
                                                  "PluginsReady")).get("reason")
                          == "DigestMismatch" and c, what="PluginsReady=False, DigestMismatch")
        assert cond["status"] == "False" and f"pinned {old}" in cond["message"]
        assert any(e["reason"] == "DigestMismatch" and e["type"] == "Warning"
                   for e in events_for(core, namespace, "qwen-shm"))
        assert "dshm" in volumes(pods(core, namespace)[POD])  # the running Pod stays

        # The new pin: the reader edits sha256 in shm-serving.yaml and applies it.
        reader.act(next(b for b in steps if b.file == "shm-serving.yaml"))
        reader.act(next(b for b in steps if b.phase == REPIN))
        def rolled() -> dict[str, Any] | None:
            pod = pods(core, namespace).get(POD)
            return pod if pod and "devshm" in volumes(pod) else None

        pod = eventually(rolled, what="the Pod rolled to the new module", timeout_s=60)
        assert json.loads(pod["metadata"]["annotations"]["podplug.io/plugins"])[0][
            "digest"] == f"sha256:{reader.digest()}"
    finally:
        operator.stop()
        log = tmp_path / "operator.log"
        if log.exists():
            print(log.read_text()[-4000:])
    print(f"\n{lang}: scaffold -> tested plugin -> ConfigMap and ModelServing: "
          f"{to_configmap:.1f} s")
    for what, seconds in reader.times:
        print(f"  {seconds:6.1f} s  {what}")
