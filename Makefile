# The two commands a newcomer runs: `make demo` and `make test`.
#
# torch: on a machine with no torch in .venv we install $(TORCH) (the CPU build, which pip finds
# on this project's machines); a .venv that already has a torch build keeps it. Elsewhere, pick
# your own build, e.g.  make TORCH="torch --index-url https://download.pytorch.org/whl/cpu" test
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test bench clean browser strip-notebooks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH)"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install -e ".[playground]"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install -e ".[test]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/reglab demo --out reglab-demo

# The report's browser test opens it in Debian's Chromium; install it when missing (as root, or
# with password-less sudo). Never a downloaded browser.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else \
	    echo "make: Chromium is missing and cannot be installed without root; apt-get install chromium" >&2; exit 0; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: $(VENV)/.installed-test browser
	KERAS_BACKEND=torch $(BIN)/python -m pytest

# The engine benchmark compares with a JAX population: the bench extra (jax, optax) comes with it.
$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-test
	$(BIN)/python -m pip install -e ".[test,bench]"
	touch $@

bench: $(VENV)/.installed-bench
	KERAS_BACKEND=torch $(BIN)/python benchmarks/engine.py

# The example notebooks live in git without outputs (a test checks).
strip-notebooks: $(VENV)/.installed-test
	$(BIN)/python -c "import nbformat, pathlib; [nbformat.write(nb, p) for p in pathlib.Path('examples').glob('*.ipynb') for nb in [nbformat.read(p, as_version=4)] if [c.update(outputs=[], execution_count=None) for c in nb.cells if c.cell_type == 'code'] is not None]"

clean:
	rm -rf $(VENV)
