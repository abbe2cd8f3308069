# The two commands of the README: `make demo` and `make test`. Everything else is a step of them.
PY_SYS ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.deps-installed
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/build/inductor-cache

# Pinned: an unpinned torch pulls a multi-GB CUDA build; triton 3.7.1 is what torch 2.13.0's CUDA build requires.
DEPS := torch==2.13.0 triton==3.7.1 numpy nibabel scipy tqdm matplotlib ninja setuptools wheel \
        pytest pytest-benchmark hypothesis monai==1.6.1 ruff==0.17.6 build
# Optional extras, pinned and installed by `make test` so their tests run in CI (pyproject's [onnx], [nnunet], [brats]).
EXTRAS := onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0 nnunetv2==2.8.1 brats-evaluation==0.0.10 panoptica==2.1.7

.PHONY: install build test lint bench bench-peers bench-compare demo clean

$(PY):
	$(PY_SYS) -m venv $(VENV)

$(STAMP): | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(DEPS)
	$(PIP) install -q torch==2.13.0 $(EXTRAS)
	# nnunetv2 pulls torchvision through timm; the registry's torchvision is built for CUDA torch and
	# fails to load beside the CPU build (torchvision::nms missing). nnU-Net's paths we use never import it.
	$(PIP) uninstall -q -y torchvision
	touch $(STAMP)

# Editable install: the compiled library lands in cga_kernels/ (rebuild after editing csrc/).
build: $(STAMP)
	$(PIP) install -q --no-build-isolation --no-deps -e .

install: build

# The lint, the test suite, then the benchmark suites as plain tests (no timing).
test: build lint
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q benchmarks --benchmark-disable

# ruff lint and format check (configured in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: build
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-autosave -q

# Peers of the fused op, interleaved (benchmarks/peers.py). torch-scatter (pyproject's [peers]) has no wheel for
# torch 2.13: it builds from source (~5 min; --no-build-isolation, or its setup.py cannot import torch); if that
# fails, the run goes on without it and says why.
bench-peers: build
	-$(PIP) install -q --no-build-isolation torch-scatter==2.1.2
	$(PY) -m benchmarks.peers

bench-compare: build
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-compare --benchmark-compare-fail=median:25% -q

clean:
	rm -rf build cga_kernels/_C*.so *.egg-info

# The main job: synthesise, train on the CPU, predict held-out cases, evaluate (~3 min after the build).
demo: build
	$(PY) -m cga_model.demo --out demo_out
