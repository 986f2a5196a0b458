# lstmcor: the two commands of the README.
#   make book   execute the course on the embedded data and build the Jupyter Book (main job)
#   make test   the test suite, the course in its `ci` preset, the book and its browser check
# Each target sets itself up: it creates .venv and installs what it needs when missing.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PRESET ?= quick
CELL_TIMEOUT ?= 1800
# chapters executed at a time (make book: 1, so that each chapter's time is its own; make test: 2)
JOBS ?= 1

.PHONY: help install lint test test-unit test-jax test-torch course book book-check benchmark clean

help:
	@echo "make book        execute every chapter (PRESET=$(PRESET); ci|quick|paper) and build book/_build/html"
	@echo "make test        lint (ruff), unit tests, the course with PRESET=ci, the book and its offline browser check"
	@echo "make lint        ruff over the package, tests, tools, benchmarks and chapters"
	@echo "make test-jax    the unit tests on the JAX backend"
	@echo "make test-torch  the unit tests on the PyTorch backend (installs torch: a large download)"
	@echo "make benchmark   time LSTM-COR against VoxelMorph (compiled path, both in one process)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,data]'
	# an editable install skips pyproject's data-files: put JupyterLab's default-viewer override in place
	mkdir -p $(VENV)/share/jupyter/lab/settings/overrides.d
	cp tools/jupyterlab/lstmcor.json $(VENV)/share/jupyter/lab/settings/overrides.d/
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

# two workers, a test file each (pytest-xdist): CI has 2 cores and much of a test is Python, not maths
test-unit: $(STAMP) lint
	$(BIN)/python -m pytest -m "not browser" -n 2 --dist loadfile --durations=25 tests

test: test-unit
	$(MAKE) book PRESET=ci CELL_TIMEOUT=300 JOBS=2
	$(MAKE) book-check

test-jax: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,jax]'
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m "not browser and not slow" tests

test-torch: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,torch]'
	KERAS_BACKEND=torch $(BIN)/python -m pytest -m "not browser" tests

course: $(STAMP)
	$(BIN)/python tools/run_course.py --preset $(PRESET) --out book/course --timeout $(CELL_TIMEOUT) --jobs $(JOBS)

book: course
	$(BIN)/jupyter-book build book/

book-check: $(STAMP)
	bash tools/install_chromium.sh
	$(BIN)/python -m pytest -m browser tests/browser

benchmark: $(STAMP)
	$(BIN)/python benchmarks/inference.py

clean:
	rm -rf book/_build book/course runs outputs
