# Two commands for a fresh machine (see README): `make demo` and `make test`.
# Both create .venv and install the exact tested pins from constraints.txt first,
# OpenMMLab included: tools/install_mmcv.sh builds mmcv once per machine (~15 min on
# 2 cores) and caches the wheel in ~/.cache/optiml-plugin/wheels.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo finetune-demo test lint bench bench-real clean

$(STAMP): setup.cfg pyproject.toml constraints.txt tools/install_mmcv.sh tools/mmcv/*.patch
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,mm]"
	tools/install_mmcv.sh $(PY)
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(PY) tools/pretrain.py --config configs/pretrain/phantom_demo.yaml

# Fine-tune the demo's backbone with mmdet on phantom lesion boxes (after `make demo`).
finetune-demo: $(STAMP)
	$(PY) tools/train.py configs/mmdet/optiml_fasterrcnn_rsna_phantom.py

test: $(STAMP)
	OPTIML_REQUIRE_MM=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff format --check . && $(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) tools/benchmark_loss.py

# The real-data benchmark (about 80 min on 2 cores; reads ../shared/data).
bench-real: $(STAMP)
	$(PY) tools/benchmark.py --preset cpu-real --readme README.md

clean:
	rm -rf $(VENV) runs work_dirs data/phantom build dist *.egg-info
