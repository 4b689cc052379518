"""Whatever bytes a plugin returns, the host answers with a typed error or a
validated merge: never another exception, never a touched input Pod.

Seeded pseudo-random responses built from the op vocabulary, mutated at every
level (wrong types, missing and extra keys, odd strings), then raw garbage.
"""

from __future__ import annotations

import copy
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack

from podplug.runtime import PluginError
from podplug.runtime.codec import decode_mutations
from podplug.runtime.merge import GATES, merge
from podplug.runtime.mutations import OP_MODELS

ROOT = Path(__file__).resolve().parents[2]
ATOMS: list[Any] = [None, True, 0, -1, 2**40, 1.5, "", "x", "vllm", "nvidia.com/gpu", "/dev/shm",
                    "modelserving.volcano.sh/role", "ENTRY_ADDRESS", "Exists", "limits", "8",
                    "emptyDir", "hostPath", "é/ü", "a" * 300, b"\xff", [], {}]
FIELDS = ["op", "key", "value", "container", "name", "kind", "quantity", "volume", "mount",
          "mountPath", "toleration", "expression", "preference", "weight", "args",
          "capabilities", "valueFrom", "fieldRef", "fieldPath", "operator", "values",
          "effect", "emptyDir", "medium", "image", "matchExpressions"]


def value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice(ATOMS)
    if roll < 0.75:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(FIELDS): value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def op(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return value(rng)
    name = rng.choice([*OP_MODELS, "rm", ""])
    fields = {"op": name}
    model = OP_MODELS.get(name)
    for field in (model.model_fields if model else {}):
        if field != "op" and rng.random() < 0.85:
            fields[field] = value(rng)
    for _ in range(rng.randint(0, 2)):
        fields[rng.choice(FIELDS)] = value(rng)
    return fields


def test_random_responses_end_in_ops_or_a_typed_error(pod: dict[str, Any]) -> None:
    rng = random.Random(20261126)
    before = copy.deepcopy(pod)
    outcomes = {"merged": 0, "typed error": 0}
    for i in range(20000):
        if i % 10 == 0:
            raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        else:
            body: Any = {"mutations": [op(rng) for _ in range(rng.randint(0, 5))]}
            if rng.random() < 0.05:
                body = rng.choice([{"error": value(rng)}, value(rng), {"mutations": value(rng)}])
            raw = msgpack.packb(body, use_bin_type=True)
        try:
            ops = decode_mutations(raw, "fuzz", "create")
            merge(ops, pod, plugin="fuzz", hook="create", grants=frozenset(
                rng.sample(list(GATES), rng.randint(0, len(GATES)))))
            outcomes["merged"] += 1
        except PluginError as e:
            assert "\n" not in str(e)
            outcomes["typed error"] += 1
        assert pod == before
    assert outcomes["merged"] > 1000 and outcomes["typed error"] > 10000, outcomes


def test_the_coverage_guided_harness_holds_its_oracle_over_the_seeds_and_a_short_run(
    tmp_path: Path,
) -> None:
    """A smoke run of `make fuzz` (tests/fuzz/fuzz_merge.py): every committed seed
    and crash regression, then 20,000 mutated inputs, with the full oracle."""
    harness = ROOT / "tests" / "fuzz" / "fuzz_merge.py"
    regressions = sorted((ROOT / "tests" / "fuzz" / "regressions").glob("*"))
    if regressions:  # inputs the fuzzer once crashed on, run one by one
        run = subprocess.run([sys.executable, str(harness), *map(str, regressions)],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-4000:]
    run = subprocess.run([sys.executable, str(harness), str(tmp_path),
                          str(ROOT / "tests" / "fuzz" / "corpus"), "-runs=20000", "-seed=1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Done 20000 runs" in run.stderr


def test_the_hosts_op_validator_accepts_and_refuses_what_the_op_models_do_in_their_words(
) -> None:
    """decode_mutations validates against TypedDicts derived from the op models
    (runtime/mutations.py, OPS): the same responses pass, with the same values,
    and the same fail with the same message as through the models themselves."""
    from pydantic import ValidationError

    from podplug.runtime import InvalidOutput
    from podplug.runtime.codec import _describe
    from podplug.runtime.mutations import MUTATIONS, without_none

    rng = random.Random(20261201)
    outcomes = {"same ops": 0, "same refusal": 0}
    for _ in range(20000):
        ops = msgpack.unpackb(msgpack.packb([op(rng) for _ in range(rng.randint(1, 2))],
                                            use_bin_type=True), raw=False)
        try:
            expected: Any = [without_none(m.model_dump()) for m in MUTATIONS.validate_python(ops)]
        except ValidationError as e:
            expected = str(InvalidOutput("p", "create", _describe(e, ops)))
        try:
            got: Any = [without_none(o) for o in decode_mutations(
                msgpack.packb({"mutations": ops}, use_bin_type=True), "p", "create")]
        except PluginError as e:
            got = str(e)
        assert got == expected, ops
        outcomes["same refusal" if isinstance(got, str) else "same ops"] += 1
    assert min(outcomes.values()) > 1000, outcomes  # both kinds, many times
