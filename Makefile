# Two commands for a fresh machine (see README): `make demo` and `make test`.
# Both create .venv and install the exact tested pins from constraints.txt first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(PY) tools/pretrain.py --config configs/pretrain/phantom_demo.yaml

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff format --check . && $(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) tools/benchmark_loss.py

clean:
	rm -rf $(VENV) runs build dist *.egg-info
