# Every target that runs something first does all set-up (idempotent; fast when already done).
.PHONY: setup demo test format bench clean

VENV := .venv

setup:
	bash scripts/setup.sh

# The main job on the embedded sample: sample → build → tokenizer → tokenize → inspect → train → report.
demo: setup
	$(VENV)/bin/corral demo --out demo

# Lint and format check (ruff, configured in pyproject.toml), then the tests; their set-up also
# installs Debian's chromium for the report's browser test.
test:
	bash scripts/setup.sh --test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -q

# Fix what ruff can fix and format the tree.
format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	bash benchmarks/setup_baselines.sh
	$(VENV)/bin/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
