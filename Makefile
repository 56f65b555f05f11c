# Set-up and everyday commands. `make test` and `make demo` create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow test-min lint bench docs clean-venv

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lmp-seg fit --config configs/demo.yaml

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(PY) -m ruff check lmp_lightning tests benchmarks
	$(PY) -m ruff format --check lmp_lightning tests benchmarks
	$(PY) -m mypy lmp_lightning

bench: $(STAMP)
	$(PY) benchmarks/bench_losses.py

# The documentation site (mkdocs.yml, docs/) into site/; --strict fails on a broken link, a
# missing anchor or an API cross-reference that does not resolve. NO_MKDOCS_2_WARNING silences
# Material for MkDocs' notice about MkDocs 2.0, which says nothing about this build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# The default tests against the declared minimum versions (constraints-min.txt), in a fresh
# .venv-min: what pyproject.toml promises is what is tested.
test-min:
	rm -rf .venv-min
	$(PYTHON) -m venv .venv-min
	.venv-min/bin/python -m pip install -c constraints-min.txt -e ".[dev]"
	.venv-min/bin/python -m pytest

clean-venv:
	rm -rf $(VENV)
