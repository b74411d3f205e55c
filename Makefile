# Two commands do all the set-up: `make demo` and `make test`. Each bootstraps .venv on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mstar-installed
DEMO_STORE ?= ./demo-store

.PHONY: test test-fast demo bench compare clean lower-bounds

# torch first, pinned to the CPU build that is on disk (a bare `torch` would pull several GB of CUDA
# packages), then the project and its dev extras. Re-runs only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "mstar needs Python >= 3.10"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Two workers (pytest-xdist), whole modules to a worker, one torch thread each: on 2 cores two one-thread
# processes get ~1.6x the work of one two-thread process done. --no-loadscope-reorder keeps the order of
# tests/conftest.py (longest modules first) instead of most tests first. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	MSTAR_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The whole M-STAR recipe on the embedded default (tiny VLM, shapes task, local store, CPU): ingest, bootstrap
# the policy, self-evolve 4 iterations, print the dynamics and write the plot. About 4 minutes on 2 cores.
# Each run starts from a fresh store; only a folder an earlier `make demo` made (it carries the marker) is
# removed: anything else at DEMO_STORE is refused, not deleted.
DEMO_MARK := $(DEMO_STORE)/.mstar-made-by-make-demo
demo: $(STAMP)
	@if [ -e "$(DEMO_STORE)" ] && [ ! -e "$(DEMO_MARK)" ]; then \
	  echo "make demo: $(DEMO_STORE) exists and was not made by make demo; move it, or run make demo DEMO_STORE=<new folder>"; \
	  exit 1; fi
	rm -rf $(DEMO_STORE)
	mkdir -p $(DEMO_STORE) && touch $(DEMO_MARK)
	$(BIN)/mstar demo --store $(DEMO_STORE)

# The paper's comparison on the embedded task, one factor at a time, 3 seeds (bench/compare_methods.py; about
# 5-6 minutes per run on 2 cores, 15 runs). Rerunning continues where it stopped.
COMPARE_STORE ?= ./compare-store
compare: $(STAMP)
	$(BIN)/python bench/compare_methods.py --store $(COMPARE_STORE)

# The declared dependency range works: every `>=` bound of pyproject.toml pinned with `==` in a separate venv
# (.venv-lower; torch stays at the on-disk 2.13.0 CPU build), then the model-family, loading and store tests.
# Not part of `make test`: about 5.5 minutes on 2 cores with the venv to build, 3 without (docs/dependencies.md).
lower-bounds:
	tools/lower_bounds.sh

bench: $(STAMP)
	$(BIN)/python bench/ingest_bench.py --records 1000
	$(BIN)/python bench/judge_bench.py
	$(BIN)/python bench/sample_bench.py --queries 100 --n 4

clean:
	rm -rf $(VENV) build dist *.egg-info $(DEMO_STORE) .pytest_cache
