# edgegen developer commands. `make test` and `make demo` are all a fresh clone needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The dev environment is pinned (requirements/constraints.txt); pyproject keeps open ranges.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt

# The top-level folders that are packages of edgegen (edgegen.<folder>), lowest layer first.
PACKAGES := runtime cluster runners evaluation train export pipeline cli models

.PHONY: install lint typecheck test test-ecosystem check-arm64 demo data models clean

install: $(STAMP) node_modules/.package-lock.json

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) pip setuptools
	$(PIP_INSTALL) -e '.[cpu,train,cluster,openvino,openvino-ep,bench,dev,docs]'
	# spandrel without its torchvision: PyPI's torchvision does not import beside the CPU torch
	# build; edgegen stands in for it (only LaMa and RestoreFormer call it).
	$(PIP_INSTALL) --no-deps spandrel einops
	touch $(STAMP)

# onnxruntime-web, pinned by package-lock.json, for the web target's tests (Node and Chromium).
# Without npm the web tests are skipped and say so.
node_modules/.package-lock.json: package.json package-lock.json
	if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --loglevel=error; \
	else echo "warning: npm not found: the web target's tests will be skipped"; fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy resolves edgegen.* through a symlink tree: the folders map onto the package only through
# setuptools' package-dir, which mypy does not read. Strict on the runtime and the runners (see
# pyproject), on the example app and on the scripts.
typecheck: install symlinks
	$(BIN)/mypy $(foreach d,$(PACKAGES),-p edgegen.$(d))
	$(BIN)/mypy --strict examples scripts

# pytest-xdist: one worker per core. Most tests wait on a subprocess (the CLI as a user runs
# it) or on one onnxruntime call, so two workers on 2 cores cut the suite by a third.
TEST_WORKERS ?= auto

test: lint typecheck
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# Every shipped model and fresh fp32/fp16/int8 exports verified, and run, in an emulated Debian
# arm64 userland (needs root and binfmt_misc; the root is built once, cached in
# /var/cache/edgegen-arm64). ARM64_FLAGS=--allow-skip exits 0 where the machine cannot run it.
check-arm64: install
	$(BIN)/python scripts/check_arm64.py $(ARM64_FLAGS)

# Every architecture of the ecosystem zoo through export (make test runs a few): about 15
# minutes on 2 cores.
test-ecosystem: install
	EDGEGEN_ECOSYSTEM=all $(BIN)/python -m pytest -q tests/export/test_ecosystem.py

# Train, export (fp32, fp16, int8, auto), verify, compare and write the HTML report: the whole
# flow in a few minutes on 2 cores (edgegen pipeline prints each stage's duration).
demo: install
	rm -rf runs/demo
	$(BIN)/edgegen pipeline --preset denoise-small --steps 300 --val-every 100 --out runs/demo

# The training and held-out photos (data/photos, git-ignored): real photographs from Debian
# packages, each checked against data/sources.toml's sha256 and listed with its licence in
# data/photos/SOURCES.md. About 210 MB of .deb downloads (cached in data/debs), under a minute.
data: install
	$(BIN)/python scripts/fetch_photos.py

# Reproduce the shipped models (models/*/): train each from its preset on `make data`'s photos,
# export fp32 and int8 (the denoiser's quantization-aware) with manifests and golden samples,
# then measure them beside BM3D and bicubic on the held-out photos and write their metrics and
# model cards (each card records every stage's steps and time: on one core each, about an hour
# and three quarters for the denoiser's two stages and for sr2).
models: install data
	rm -rf runs/models
	$(BIN)/edgegen train --preset denoise-blind --out runs/models/denoise-blind-l1
	$(BIN)/edgegen train --preset denoise-blind-ft --init runs/models/denoise-blind-l1 \
		--out runs/models/denoise-blind-mse
	$(BIN)/edgegen train --preset denoise-blind-psnr --init runs/models/denoise-blind-mse \
		--out runs/models/denoise-blind-psnr
	$(BIN)/edgegen train --preset denoise-blind-bright --init runs/models/denoise-blind-psnr \
		--out runs/models/denoise-blind
	$(BIN)/edgegen export runs/models/denoise-blind --out models/denoise-blind --precision fp32,int8 \
		--qat 1200 --calib data/photos/train --calib-count 64
	$(BIN)/edgegen train --preset sr2 --out runs/models/sr2
	$(BIN)/edgegen export runs/models/sr2 --out models/sr2 --precision fp32,int8 \
		--calib data/photos/train --calib-count 64
	$(BIN)/python benchmarks/shipped_models.py --runs runs/models --write

# edgegen.* as a tree of links to the folders, for the tools that do not read setuptools'
# package-dir (mypy, the API reference's griffe).
.PHONY: symlinks
symlinks:
	mkdir -p .typecheck/edgegen
	for d in $(PACKAGES); do ln -sfn ../../$$d .typecheck/edgegen/$$d; done

# docs/cli.md from the commands' --help (a test fails when it is stale), then the documentation
# site in site/ (MkDocs + Material; the Python API from the docstrings), warnings as errors.
.PHONY: docs
docs: install symlinks
	$(BIN)/python scripts/gen_cli_reference.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@echo "site/index.html"

clean:
	rm -rf $(VENV) .typecheck .pytest_cache .mypy_cache .ruff_cache runs site
