# Two commands, each doing its own set-up on a fresh machine:
#   make report   — a report for the built-in resnet20 into out/resnet20/
#   make test     — the test suite
# Both create .venv/ with everything they need the first time.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CIFAR_ARCHIVE := ../shared/data/cifar10-jpg.tar.gz
CACHE := $(HOME)/.cache/nnviz_report
MODEL ?= resnet20
PER_CLASS ?= 10

.PHONY: report test system-deps examples bench clean

$(BIN)/nnviz-report: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# The PDF tests need pdftoppm/pdftotext and the browser test needs Chromium (Debian packages).
system-deps:
	@command -v pdftoppm >/dev/null && command -v chromium >/dev/null || { \
	  SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q poppler-utils chromium fonts-dejavu-core; }

# Uses the CIFAR-10 test split: the JPEG copy beside the checkout when there is one,
# otherwise torchvision's download into the cache.
report: $(BIN)/nnviz-report
	@if [ -f $(CIFAR_ARCHIVE) ]; then \
	  mkdir -p $(CACHE) && [ -d $(CACHE)/cifar10-jpg/test ] || { mkdir -p $(CACHE)/cifar10-jpg && tar -xzf $(CIFAR_ARCHIVE) -C $(CACHE)/cifar10-jpg; }; \
	  DATA=$(CACHE)/cifar10-jpg/test; else DATA=cifar10; fi; \
	$(BIN)/nnviz-report report --model $(MODEL) --data $$DATA --per-class $(PER_CLASS) -o out/$(MODEL)

test: $(BIN)/nnviz-report system-deps
	$(BIN)/python -m pytest -n 2 -q

# example_reports/ (lenet, resnet20, compare-resnet20) from the shipped weights, and the README's
# screenshots in docs/screenshots/ (headless Chromium). Deterministic: tests/test_examples.py checks them.
examples: $(BIN)/nnviz-report system-deps
	$(BIN)/python scripts/make_examples.py --screenshots

bench: $(BIN)/nnviz-report
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) out build *.egg-info
