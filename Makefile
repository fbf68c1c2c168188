# spectralign_fast — the two commands that matter: `make demo` and `make test` (and `make docs`).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.spectralign-installed
DOCS_STAMP := $(VENV)/.spectralign-docs-installed
BUILD_REQUIREMENTS := "scikit-build-core>=0.10" "pybind11>=2.13" "pylib-fftw3f>=0.0.5" "cmeel-eigen>=3.4"
# Every build made here has _core.dev (benchmark helpers, test hooks); a
# plain `pip install .` leaves it out.
DEV_TOOLS := --config-settings=cmake.define.SPECTRALIGN_DEV_TOOLS=ON
SOURCES := pyproject.toml CMakeLists.txt $(shell find cpp python -type f -not -name '*.pyc' 2>/dev/null)

.PHONY: all install demo test docs bench system-deps clean

all: install

system-deps:
	@bash tools/install-system-deps.sh $(PYTHON)

$(PY):
	@bash tools/install-system-deps.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)

# Built without isolation into a persistent build/ folder, so a rebuild after
# a change recompiles only what changed.
$(STAMP): $(PY) $(SOURCES)
	@bash tools/install-system-deps.sh $(PYTHON)
	$(PIP) install -q --disable-pip-version-check $(BUILD_REQUIREMENTS)
	$(PIP) install -q --disable-pip-version-check --no-build-isolation $(DEV_TOOLS) ".[test,demo]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/spectralign-fast demo --output demo-output

test: install
	$(PY) -m pytest

$(DOCS_STAMP): $(STAMP)
	$(PIP) install -q --disable-pip-version-check --no-build-isolation $(DEV_TOOLS) ".[docs]"
	@touch $(DOCS_STAMP)

# The site goes to site/ (open site/index.html); --strict turns every warning
# (a broken link, a docstring griffe cannot parse) into a failure.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# Several minutes (the million-tile placement cases); results go to bench/RESULTS.md by hand.
bench: install
	$(PY) bench/bench_match.py
	$(PY) bench/bench_place.py
	$(PY) bench/bench_render.py
	$(PY) bench/bench_stack.py
	$(PY) bench/bench_output.py
	$(PY) bench/bench_montage.py
	$(PY) bench/bench_montage.py --model similarity
	$(PY) bench/bench_distributed.py

clean:
	rm -rf build $(VENV) demo-output site
