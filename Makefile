# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv on first use.
# The demo's set-up installs the package and what its commands use (figures, camera formats, image
# simulation, ONNX export);
# only `make test` adds the test tools (pytest, Triton for the kernel tests, a local Hub server, ...).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch pulls several GB of CUDA packages.
TORCH_PIN := torch==2.13.0
# Real recordings for the demo: the N-MNIST subset beside this checkout, when it is there
# (`make demo STC_ZOO_DATA=PATH` for another; empty: synthetic events).
STC_ZOO_DATA ?= $(wildcard ../shared/data/nmnist-subset)

.PHONY: demo test test-install docs setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[viz,formats,simulate,deploy]"
	touch $@

# NeuroBench is the oracle of the efficiency metrics (tests/test_metrics.py). --no-deps: it pins
# torchaudio, which would replace the CPU torch; the harness and snnTorch's neuron classes it
# imports need nothing beyond what is installed.
NEUROBENCH := neurobench==2.3.0 snntorch==1.0.0
# aestream's own UDP sender is a real peer of stc_zoo.sources.UdpSource (tests/test_sources.py); its
# command-line binary needs none of its Python dependencies (SDL for its viewer).
AESTREAM := aestream==0.6.4
# The NIR readers the export is checked with (tests/test_export_nir.py; snnTorch comes with NeuroBench above).
# --no-deps: their pins clash (Sinabs wants nir<=1.0.4 and samna, Norse torchvision, which breaks beside the
# CPU torch); what they import is installed, with one nir (the deploy extra's).
NIR_READERS := nirtorch==2.6 norse==1.1.0 sinabs==3.1.3 pbr==7.1.3

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps $(NEUROBENCH) $(AESTREAM) $(NIR_READERS)
	touch $@

demo: setup
	STC_ZOO_DATA="$(STC_ZOO_DATA)" $(PY) -m stc_zoo.demo

# One worker per core (pytest-xdist; torch in each worker uses one thread): most tests wait on a subprocess or on
# Python, so two workers on two cores halve the suite. --durations: the slowest tests, to keep it fast.
test: $(VENV)/.installed-test
	$(PY) -m pytest -q -n auto --dist worksteal --durations=15

# What `pip install` gives: the wheel and the sdist built from this tree, each in a fresh venv with the
# pinned torch, every command run from outside the checkout (tests/test_installed.py; minutes).
test-install: $(VENV)/.installed-test
	$(PY) -m pytest -q -m installed tests/test_installed.py

# The documentation site into site/: strict (a broken link or reference is an error), offline.
$(VENV)/.installed-docs: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build *.egg-info site

# The GPU check (issue 25): `make gpu-wheels` here (a machine with a package registry) puts into .gpu/
# what the GPU machine cannot fetch: this package's wheel, tonic and SpikingJelly with what they need
# beyond that machine's own torch, Triton, numpy, scipy, h5py, numba (Python 3.12 wheels; expelliarmus, which
# tonic lists but does not import, has none for 3.12 and stays behind), 20 N-MNIST
# recordings of ../shared (never committed: .gpu/ is ignored) and the commit. On the GPU machine
# (carry .gpu), `make gpu-report` installs them beside its Python and runs the report into $(GPU_OUT).
GPU_OUT ?= $(if $(OUT),$(OUT),runs/gpu-report)
GPU_SITE := /tmp/stc-zoo-site
GPU_WHEELS := tonic==1.7.0 importRosbag==1.0.4 spikingjelly==2.0.0 loguru==0.7.3 SciencePlots==2.2.2
PLATFORMS := --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
	--platform manylinux2014_x86_64 --platform manylinux1_x86_64

.PHONY: gpu-wheels gpu-report

gpu-wheels: setup
	rm -rf .gpu && mkdir -p .gpu/wheels .gpu/data
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation -w .gpu/wheels .
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		$(PLATFORMS) -d .gpu/wheels $(GPU_WHEELS)
	for d in 0 1 2 3 4 5 6 7 8 9; do mkdir -p .gpu/data/$$d; \
		ls ../shared/data/nmnist-subset/Train/$$d/*.bin | head -2 | xargs -I{} cp {} .gpu/data/$$d/; done
	git rev-parse HEAD > .gpu/commit.txt
	du -sh .gpu

gpu-report:
	python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
		--target $(GPU_SITE) .gpu/wheels/*.whl
	PYTHONPATH=$(GPU_SITE) PYTHONUNBUFFERED=1 python3 benchmarks/gpu_report.py $(GPU_OUT) $(GPU_REPORT_FLAGS)
