# edgegen developer commands. `make test` and `make demo` are all a fresh clone needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The dev environment is pinned (requirements/constraints.txt); pyproject keeps open ranges.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt

.PHONY: install lint typecheck test demo clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) pip setuptools
	$(PIP_INSTALL) -e '.[cpu,train,dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy resolves edgegen.* through a symlink tree: the folders map onto the package only through
# setuptools' package-dir, which mypy does not read. Strict on the runtime (see pyproject).
typecheck: install
	mkdir -p .typecheck/edgegen
	for d in runtime train export models; do ln -sfn ../../$$d .typecheck/edgegen/$$d; done
	$(BIN)/mypy -p edgegen.runtime -p edgegen.train -p edgegen.export -p edgegen.models

test: lint typecheck
	$(BIN)/python -m pytest -q

demo: install
	rm -rf runs/demo
	$(BIN)/edgegen train --preset denoise-small --steps 300 --val-every 100 --out runs/demo
	$(BIN)/edgegen export runs/demo --out runs/demo/export --precision fp32,fp16,int8

clean:
	rm -rf $(VENV) .typecheck .pytest_cache .mypy_cache .ruff_cache runs
