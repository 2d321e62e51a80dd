# graftwatch: `make demo` installs and runs the demo; `make test` installs and runs the tests.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
DEMO_DIR ?= graftwatch-demo

.PHONY: install install-torch demo test bench

# Keep a torch the user already has (a CUDA build stays). Otherwise: with an NVIDIA
# driver, the default (CUDA) build; without one, the CPU build: torch==X+cpu where pip's
# find-links or indexes have it (PyPI has no +cpu build, so elsewhere that fails at once),
# else PyTorch's CPU index. Never a multi-GB CUDA download on a CPU box.
install-torch:
	@if $(PYTHON) -c "import torch" >/dev/null 2>&1; then \
	  echo "keeping installed torch $$($(PYTHON) -c 'import torch; print(torch.__version__)')"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then \
	  $(PIP) install "torch>=2.1"; \
	else \
	  $(PIP) install "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
	  || $(PIP) install "torch==$(TORCH_VERSION)" --index-url $(TORCH_CPU_INDEX); \
	fi

install: install-torch
	$(PIP) install -q -e ".[test]"

demo: install
	graftwatch demo --out $(DEMO_DIR)

test: install
	$(PYTHON) -m pytest -q -n 2 --dist loadgroup

bench: install
	$(PIP) install -q -e ".[bench]"
	$(PYTHON) -m scripts.benchmarks.all
