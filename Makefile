# spectralign_fast — the two commands that matter: `make demo` and `make test` (and `make typecheck`, `make docs`).
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

.PHONY: all install demo test typecheck docs bench sanitize system-deps clean

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

# mypy (installed into the venv with the test extra by `make install`) over the package as
# configured in pyproject.toml, then over tests/typing_usage.py: the public API as typed
# user code calls it.
typecheck: install
	$(PY) -m mypy
	$(PY) -m mypy tests/typing_usage.py

$(DOCS_STAMP): $(STAMP)
	$(PIP) install -q --disable-pip-version-check --no-build-isolation $(DEV_TOOLS) ".[docs]"
	@touch $(DOCS_STAMP)

# The site goes to site/ (open site/index.html); --strict turns every warning
# (a broken link, a docstring griffe cannot parse) into a failure.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# The core built with AddressSanitizer + UndefinedBehaviorSanitizer into its own folder
# (.asan/, the normal install untouched), then the bad-input, property, reliability, thread
# and distributed tests run against it; any report fails the run. libasan must be loaded
# first, and libstdc++ beside it, or ASan stops at the first C++ exception.
ASAN_SITE := .asan
SANITIZE_TESTS := tests/test_bad_input.py tests/test_properties.py tests/test_reliability.py \
	tests/test_output_state.py tests/test_distributed.py tests/test_matcher.py tests/test_registration.py \
	tests/test_render.py tests/test_placement.py tests/test_reliability_render.py tests/test_register_metric.py \
	tests/test_register_fields.py tests/test_displacement_fields.py tests/test_lddmm_core.py \
	tests/test_mesh_core.py tests/test_zdrift.py tests/test_nonrigid.py tests/test_thread_pool.py
sanitize: install
	rm -rf $(ASAN_SITE)
	$(PIP) install -q --disable-pip-version-check --no-build-isolation --no-deps $(DEV_TOOLS) --target $(ASAN_SITE) \
		-C build-dir=build/asan -C cmake.build-type=RelWithDebInfo -C cmake.define.SPECTRALIGN_SANITIZE=ON .
	LD_PRELOAD="$$(g++ -print-file-name=libasan.so) $$(g++ -print-file-name=libstdc++.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	PYTHONPATH=$(CURDIR)/$(ASAN_SITE) $(PY) -m pytest -q -p no:cacheprovider --capture=sys $(SANITIZE_TESTS) \
		-m "not slow" -o addopts="-ra --strict-markers"

# Several minutes (the million-tile placement cases); results go to bench/RESULTS.md by hand.
bench: install
	$(PIP) install -q --disable-pip-version-check --no-build-isolation $(DEV_TOOLS) ".[test,bench]"
	$(PY) bench/bench_match.py
	$(PY) bench/bench_place.py
	$(PY) bench/bench_render.py
	$(PY) bench/bench_stack.py
	$(PY) bench/bench_output.py
	$(PY) bench/bench_montage.py
	$(PY) bench/bench_montage.py --model similarity
	$(PY) bench/bench_distributed.py

clean:
	rm -rf build $(VENV) demo-output site $(ASAN_SITE)
