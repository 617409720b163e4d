# Two commands on a fresh clone:  make demo   (set up .venv, run the demo)  ·  make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel; a looser spec would pull a multi-GB CUDA build.
	# A torch already in .venv (a CUDA build of your choice) is kept.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	# ... and held there: nnU-Net's timm asks for torchvision, whose newest release would swap
	# the torch found here for a multi-GB CUDA build of another version
	$(BIN)/pip install --quiet -e ".[dev]" "torch==$$($(BIN)/python -c 'import torch; print(torch.__version__)')"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/synthtumor demo --out demo-output

# The reader-study browser test drives Debian's Chromium through its chromedriver.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

test: $(STAMP) browser
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/synthesis.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
