# podplug: `make demo` runs the main job, `make test` runs every test.
# Both install what they need (Python, Debian and npm packages, the Go-built
# control plane and test tools) and cache it after the first run.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PODPLUG := $(VENV)/bin/podplug
export PODPLUG_CACHE_DIR ?= $(HOME)/.cache/podplug

.PHONY: venv deps test test-unit demo controlplane tools lint bench bench-operator bench-fairness bench-admission fuzz clean

# A stamp keyed on pyproject.toml: the venv is rebuilt only when deps change.
$(VENV)/.stamp: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.stamp

# Debian packages: wasm toolchains for the SDKs and fixtures.
deps:
	@hack/install-deps.sh

controlplane: venv
	@hack/controlplane/build.sh

# helm, CNCF distribution's registry and cosign, for the deploy and OCI tests.
tools:
	@hack/tools/build.sh

lint: venv
	$(VENV)/bin/ruff check .

# Every test: lint, runtime and hostile modules, SDK builds and conformance, the
# shipped plugins (rebuilt and compared with the committed bytes), and the
# operator against a real kube-apiserver, and Kthena parity; hack/test.sh runs
# the slowest parts beside the rest. A skipped test fails the run here.
test: deps venv controlplane tools
	$(VENV)/bin/ruff check .
	PODPLUG_STRICT=1 PY=$(PY) hack/test.sh

demo: deps venv controlplane
	$(PY) hack/demo.py

# The hook path, then plugins from a registry (pull + verify + compile).
bench: venv controlplane tools
	$(PY) bench/run.py
	$(PY) bench/oci.py

# The operator on the local control plane: 400 Pods against a plain client's
# floor, scaling, and (AT_SCALE=1) 1,000 ModelServings / 10,000 Pods.
bench-operator: venv controlplane
	$(PY) bench/operator.py $(if $(AT_SCALE),--at-scale)

# How long a healthy tenant waits while two others run hostile plugins or huge objects.
bench-fairness: venv controlplane
	$(PY) bench/fairness.py

# Admission latency with the operator's validating webhook: no plugins, the demo chain.
bench-admission: venv controlplane
	$(PY) bench/admission.py

# Coverage-guided fuzzing of the response decoder, op validator and merge
# (tests/fuzz/fuzz_merge.py). New inputs go to .fuzz/corpus, crashes to .fuzz/;
# the committed seeds in tests/fuzz/corpus are only read.
FUZZ_SECONDS ?= 600
fuzz: venv
	@mkdir -p .fuzz/corpus
	$(PY) tests/fuzz/fuzz_merge.py .fuzz/corpus tests/fuzz/corpus \
	  -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=.fuzz/ -print_final_stats=1

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .fuzz
