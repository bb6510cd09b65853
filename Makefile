# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv on first use.
# The demo's set-up installs the package and what its commands use (figures, camera formats);
# only `make test` adds the test tools (pytest, Triton for the kernel tests, a local Hub server, ...).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch pulls several GB of CUDA packages.
TORCH_PIN := torch==2.13.0
# Real recordings for the demo: the N-MNIST subset beside this checkout, when it is there
# (`make demo STC_ZOO_DATA=PATH` for another; empty: synthetic events).
STC_ZOO_DATA ?= $(wildcard ../shared/data/nmnist-subset)

.PHONY: demo test setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[viz,formats]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

demo: setup
	STC_ZOO_DATA="$(STC_ZOO_DATA)" $(PY) -m stc_zoo.demo

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
