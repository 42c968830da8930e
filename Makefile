# Two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
# `make demo` installs the runtime and the demo's two extras only; `make test` adds the
# development toolchain and the CPU build of PyTorch. Separate stamps, so either runs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch for the optional TorchScript runtime (tests cover it). Pinned to
# the +cpu build so pip never resolves the CUDA one (3 GB of nvidia packages). PyPI has no
# +cpu build: pip finds it through find-links (a local wheel folder) or PyTorch's CPU index,
# given as TORCH_INDEX (make test TORCH_INDEX=https://download.pytorch.org/whl/cpu).
TORCH       ?= torch==2.13.0+cpu
TORCH_INDEX ?=
STAMP      := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
# Every other package's version, as the suite last passed on (see its header).
CONSTRAINTS := constraints.txt
# pandas 3, what a fresh `pip install dockyard` resolves: the unit and integration tests run
# once more under it, in .venv-pandas3 (scripts/ensure-pandas3.sh: pandas alone, the rest
# read from .venv, which keeps pandas 2 for a test-only client that requires it).
PANDAS3 ?= pandas==3.1.1

.PHONY: demo test lint install clean protos constraints

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The runtime and what the demo trains with (LightGBM, palmerpenguins); no dev tools, no torch.
$(DEMO_STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[demo]" -c $(CONSTRAINTS)
	$(BIN)/python scripts/stale-packages.py $(CONSTRAINTS)
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]" "$(TORCH)" -c $(CONSTRAINTS) \
		$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) \
		|| { echo "make: pip install failed; if it found no $(TORCH), run" \
		"make test TORCH_INDEX=https://download.pytorch.org/whl/cpu" >&2; exit 1; }
	$(BIN)/python scripts/stale-packages.py $(CONSTRAINTS)
	touch $(STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m dockyard.demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo

test: $(STAMP)
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-haproxy.sh
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-axe.sh
	bash scripts/ensure-pandas3.sh "$(PANDAS3)"
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -q
	.venv-pandas3/bin/python -m pytest -q -p no:cacheprovider -m "not postgres and not slow" \
		tests/unit tests/integration

# Regenerate the gRPC modules from src/dockyard/server/grpc/inference.proto (committed).
protos: $(STAMP)
	$(BIN)/python scripts/protos.py

# Re-resolve the development environment from pyproject.toml alone (newest releases; pip
# may backtrack for a long while) and write what it chose to constraints.txt, keeping its
# header. Run `make test` on the result before committing it.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --upgrade pip
	.venv-constraints/bin/python -m pip install --quiet -e ".[dev]" "$(TORCH)" \
		$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	{ grep '^#' $(CONSTRAINTS); .venv-constraints/bin/python -m pip freeze --exclude-editable \
		| grep -v '^torch=='; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf .venv-constraints

clean:
	rm -rf $(VENV) .venv-pandas3 .dockyard-demo .pytest_cache .mypy_cache .ruff_cache
