# Two commands do everything on a fresh machine with Python 3.11 (plus node/npm for the assets):
#   make book   -> .venv, dependencies, curvlib, front-end assets, the site in _build/html
#   make test   -> the same set-up when needed, then every test (curvlib, notebooks, site, PDF)
#   make pdf    -> the whole book as one PDF, _build/html/_static/book.pdf (Chromium prints the site)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ASSETS := node_modules/.package-lock.json
export OMP_NUM_THREADS ?= 2
# Test workers run side by side (pytest-xdist), one per core of the 2-core machine make test is
# budgeted for; each notebook worker runs its kernel on one thread.
JOBS ?= 2
export PYTHONHASHSEED ?= 0
# Every process that computes runs with the same numeric settings on any x86-64 CPU with AVX2
# (torch, numpy, OpenBLAS, MKL held at the AVX2 level; nothing pinned elsewhere): tools/numerics.py.
PINNED := $(BIN)/python tools/numerics.py --
# No MPLBACKEND here: a kernel that inherits Agg would not show figures inline.

.PHONY: venv assets book lab pdf test test-lib test-notebooks test-robustness test-site test-pdf \
        test-lab test-wheel notebooks screenshots bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3
	$(BIN)/python tools/numerics.py --pin-kernel $(VENV)
	touch $(STAMP)

# MathJax, require.js and the ipywidgets HTML manager, pinned by package-lock.json and served
# from the site itself (tools/curvlib_book.py copies them into _build/html/_static/vendor).
assets: $(ASSETS)

$(ASSETS): package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	touch $(ASSETS)

book: $(STAMP) $(ASSETS)
	$(BIN)/jupyter-book build . -W -n --keep-going

# The site links the PDF; tools/book_pdf.py prints the built site with Chromium (about a minute).
pdf: book
	$(BIN)/python tools/book_pdf.py

# JupyterLab on the chapters, with the project's kernel (pinned numerics, see tools/numerics.py)
# ahead of any kernel of the same name in the user's own Jupyter folders.
lab: $(STAMP)
	JUPYTER_PATH=$(CURDIR)/$(VENV)/share/jupyter $(PINNED) $(BIN)/jupyter-lab chapters \
	    $(if $(filter 0,$(shell id -u)),--allow-root)

# test-robustness re-executes every notebook under a second rounding regime (tools/robustness.py).
# The last four stages keep only about one core busy each (one Chromium, or one install and one
# kernel), so one make runs them in two lanes and builds the site once for the two that read it:
# the site build, then its tests (the longest chain, about 3 minutes), beside the wheel test, then
# the JupyterLab test, then the PDF print and its test. Left to itself, make starts the JupyterLab
# test as soon as the site is built and holds the site tests back by a minute: TEST_LANES orders
# the second lane.
SHARE := $(MAKE) --no-print-directory --output-sync=target -j$(JOBS)
test: test-lib test-notebooks test-robustness
	$(SHARE) TEST_LANES=1 test-site test-wheel test-pdf test-lab

ifdef TEST_LANES
test-lab: | test-wheel
pdf: | test-lab
endif

WHEEL_TEST := tests/test_install.py::test_wheel_runs_chapters_from_an_empty_folder

test-lib: $(STAMP)
	MPLBACKEND=Agg $(PINNED) $(BIN)/python -m pytest tests -q --deselect $(WHEEL_TEST) \
	    --ignore=tests/test_site.py --ignore=tests/test_pdf.py --ignore=tests/test_lab.py \
	    -n $(JOBS) --dist loadfile

# The wheel, installed into a fresh venv, runs two chapters from an empty folder (about two minutes).
test-wheel: $(STAMP)
	MPLBACKEND=Agg $(PINNED) $(BIN)/python -m pytest $(WHEEL_TEST) -q

# Strict nbval: every output compared; the sanitizer only masks what legitimately varies.
# Notebooks side by side, one thread each (their outputs do not depend on the thread count),
# longest first, each notebook's cells in order on one worker.
test-notebooks: $(STAMP)
	OMP_NUM_THREADS=1 $(PINNED) $(BIN)/python -m pytest --nbval --nbval-current-env -q \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg -n $(JOBS) --dist loadfile \
	    --no-loadscope-reorder $$($(BIN)/python tools/run_notebooks.py --order chapters/*.ipynb)

# The conclusions survive a different rounding regime: every notebook re-executed into a temporary
# folder (never in place) and compared with the committed run (tools/robustness.py). $(JOBS) notebooks
# at a time, one thread each.
test-robustness: $(STAMP)
	$(PINNED) $(BIN)/python tools/robustness.py --jobs $(JOBS)

test-site: book
	$(BIN)/python -m pytest tests/test_site.py -q

test-pdf: pdf
	$(BIN)/python -m pytest tests/test_pdf.py -q

# The live notebook: a clean JupyterLab on a free local port, chapter 1 run in Chromium.
test-lab: $(STAMP)
	$(PINNED) $(BIN)/python -m pytest tests/test_lab.py -q

notebooks: $(STAMP)
	$(PINNED) $(BIN)/python tools/run_notebooks.py

# Uses the site as last built (`make book`), so a page can be looked at while others still warn.
screenshots: $(STAMP) $(ASSETS)
	test -f _build/html/index.html || $(MAKE) book
	$(BIN)/python tools/screenshots.py
	$(PINNED) $(BIN)/python tools/lab.py screenshot

bench: $(STAMP)
	@set -e; for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script; done

clean:
	rm -rf _build screenshots
