# Two commands: `make lab` (set up, open the workbook) and `make test` (set up, run every test).
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build of torch keeps the install small; override with `make TORCH=torch test` for a CUDA build.
TORCH  ?= torch==2.13.0
PYTHON ?= python3

.PHONY: setup lab test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# Jupyter refuses to run as root unless told; containers (and some workshop VMs) run as root.
lab: setup
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV)
