# Sortline: `make demo` and `make test` set everything up from a fresh clone.
# The virtualenv is rebuilt whenever pyproject.toml or constraints.txt change.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
# The demo needs no torch: camera agent and worker only. Tests and the trainer need everything.
DEMO_STAMP := $(VENV)/.demo-installed
ALL_STAMP  := $(VENV)/.all-installed

.PHONY: demo test lint bench train finetune evaluate dist wheelhouse clean help

help:
	@echo "make demo       - install, then run a worker and a camera agent in items mode on samples/belt/demo.mp4"
	@echo "make test       - install, then run lint and the whole test suite (needs RabbitMQ)"
	@echo "make lint       - ruff check and ruff format --check"
	@echo "make bench      - measure the worker (python -m bench --help)"
	@echo "make train      - retrain the default model's heads on its fine-tuned backbone (~10 min on 2 cores)"
	@echo "make finetune   - fine-tune a new backbone from the pretrained weights (~50 min on 2 cores)"
	@echo "make evaluate   - score models/default on the validation split of ../shared/datasets"
	@echo "make dist       - build dist/sortline-*.whl, the default model inside, for boxes without a checkout"
	@echo "make wheelhouse - dist, plus every dependency's wheel in dist/, for boxes without a package index"
	@echo "make clean      - remove the virtualenv and caches"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# `trackers` (items mode's ByteTrack) declares the GUI build of OpenCV, which would overwrite the
# headless one it runs on: it is installed on its own, without its declared dependencies (the
# `items` extra holds what it imports).
TRACKERS := $(PIP) --no-deps trackers

$(DEMO_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e '.[camera,items,worker,ejector,dev]'
	$(TRACKERS)
	touch $@

$(ALL_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e '.[all]'
	$(TRACKERS)
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/sortline-demo

lint: $(ALL_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collects no tests; that is not a failure of the set-up.
test: $(ALL_STAMP)
	bash scripts/install-test-tools.sh
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

bench: $(ALL_STAMP)
	$(BIN)/python -m bench

# The default model: new heads (organic, material, hazard) on the fine-tuned backbone of the model in
# models/default, thresholds from out-of-fold predictions with a Wilson margin; minutes, not an hour
# (docs/model-report/NOTES.md). The backbone is unchanged, so running it again gives the same model.
# Fine-tuning the backbone itself, ~50 min on 2 cores: `make finetune` (checkpoints in runs/finetune,
# add --resume to continue a stopped run), then `make train` for the heads.
train: $(ALL_STAMP)
	$(BIN)/trainer train --mode heads --backbone-from models/default --data ../shared/datasets/trashnet ../shared/datasets/garbage12 ../shared/datasets/garbage12-extra --hidden 128 --epochs 12 --folds 3 --out models/default

finetune: $(ALL_STAMP)
	$(BIN)/trainer train --mode finetune --data ../shared/datasets/trashnet ../shared/datasets/garbage12 --out models/default

evaluate: $(ALL_STAMP)
	$(BIN)/trainer evaluate --model models/default --data ../shared/datasets/trashnet ../shared/datasets/garbage12 ../shared/datasets/garbage12-extra --split val

# The wheel an edge box installs from (docs/operations.md, "An edge box without containers"), with
# the default model for workers. Built from this tree with the virtualenv's setuptools, so it needs
# no package index; DIST=... puts it elsewhere.
DIST ?= dist
dist: | $(VENV)/bin/python
	$(BIN)/python -c "import setuptools" 2>/dev/null || $(PIP) setuptools
	rm -rf build $(DIST)/sortline-*.whl
	$(BIN)/pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation --wheel-dir $(DIST) .
	rm -rf build sortline.egg-info
	@ls $(DIST)/sortline-*.whl

# Every dependency's wheel next to it, at the versions constraints.txt pins, so that
#   pip install --no-index --find-links dist 'sortline[camera,items]'
# works on a box with no package index at all (run this where one is reachable; same CPU
# architecture and Python as the boxes). trackers without its GUI OpenCV, as above.
wheelhouse: dist
	$(BIN)/pip download --quiet --disable-pip-version-check -c constraints.txt --dest $(DIST) \
	  $(DIST)/sortline-*.whl'[camera,items,worker,ejector]'
	$(BIN)/pip download --quiet --disable-pip-version-check -c constraints.txt --no-deps --dest $(DIST) trackers

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .cache build dist
