# Every target that runs something first does all set-up (idempotent; fast when already done).
.PHONY: setup demo test bench clean

VENV := .venv

setup:
	bash scripts/setup.sh

# The main job on the embedded sample. Until `corral demo` lands (the end-to-end issue), it shows
# what exists: the demo's and the paper's mixtures as Table 1.
demo: setup
	$(VENV)/bin/corral inspect manifests/sample.yaml
	$(VENV)/bin/corral inspect manifests/llama1.yaml

test: setup
	$(VENV)/bin/python -m pytest -q

bench: setup
	bash benchmarks/setup_baselines.sh
	$(VENV)/bin/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
