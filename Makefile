# Two commands do everything on a fresh machine with Python 3.11:
#   make book   -> .venv, dependencies, curvlib, the site in _build/html
#   make test   -> the same set-up when needed, then every test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2
export MPLBACKEND ?= Agg

.PHONY: venv book test test-lib test-notebooks notebooks bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

test: test-lib test-notebooks

test-lib: $(STAMP)
	$(BIN)/python -m pytest tests -q

test-notebooks: $(STAMP)
	$(BIN)/python -m pytest --nbval chapters -q --sanitize-with tests/nbval_sanitize.cfg

notebooks: $(STAMP)
	$(BIN)/python tools/run_notebooks.py chapters/*.ipynb

bench: $(STAMP)
	$(BIN)/python benchmarks/optimizers.py

clean:
	rm -rf _build
