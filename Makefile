# Every target that runs something first does all set-up (idempotent; fast when already done).
.PHONY: setup demo test bench clean

VENV := .venv

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/corral demo

test: setup
	$(VENV)/bin/python -m pytest -q

bench: setup
	$(VENV)/bin/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
