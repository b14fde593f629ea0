# Two commands: `make demo` (the main job) and `make test` (the suite). Each builds or refreshes .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Written only after a complete install: a half-built .venv is finished (or rebuilt) by the next make.
STAMP := $(VENV)/.emovit-installed
DEMO_OUT ?= demo-output

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): setup.cfg setup.py pyproject.toml constraints.txt
	@$(BIN)/python -c "import sys" 2>/dev/null || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/emovit demo --out $(DEMO_OUT)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
