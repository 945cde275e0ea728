# Two commands, each doing its own set-up on a fresh machine:
#   make report   — a report for the built-in resnet20 into out/resnet20/
#   make test     — the test suite
# Both create .venv/ with everything they need the first time.
#
# make report takes (all optional):
#   DATA=DIR       an ImageFolder with the ten CIFAR-10 class folders (e.g. the test/ folder of
#                  cifar10-jpg.tar.gz), or DATA=cifar10 for torchvision's copy (downloaded once into
#                  ~/.cache/nnviz_report). Default: the JPEG archive beside the checkout
#                  (../shared/data/cifar10-jpg.tar.gz, unpacked once into ~/.cache/nnviz_report),
#                  otherwise cifar10.
#   MODEL=SPEC     lenet, resnet20, torchvision:NAME, package.module:callable, … (default resnet20)
#   PER_CLASS=K    images per class in the sample (default 10)
#   OUT=DIR        output folder (default out/MODEL)
# e.g. make report MODEL=lenet PER_CLASS=2 DATA=/path/to/cifar10-folder

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CIFAR_ARCHIVE := ../shared/data/cifar10-jpg.tar.gz
CACHE := $(HOME)/.cache/nnviz_report
MODEL ?= resnet20
PER_CLASS ?= 10
DATA ?=
OUT ?= out/$(subst :,-,$(MODEL))
# Debian packages; apt-get runs through sudo when not root. Elsewhere, install the equivalents.
APT_INSTALL = SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
	$$SUDO apt-get update -q && $$SUDO apt-get install -y -q

.PHONY: report test system-deps fonts compiler examples bench clean

# PIP_ENV: setuptools' editable install prints an "InformationOnly" banner (folders named like the
# package in the working directory may shadow it); here that folder is the package itself, so the
# banner is noise on a newcomer's first screen. Only that one warning is filtered, by its message.
PIP_ENV := PYTHONWARNINGS="ignore:Editable installation"

# setup.py builds the optional C kernel of the capture in place (skipped, with the torch path
# instead, where no C compiler is found); a changed kernel source reinstalls, which rebuilds it.
$(BIN)/nnviz-report: pyproject.toml setup.py nnviz_report/stats/_fused.c | compiler
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(PIP_ENV) $(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# A C compiler for that kernel, installed (Debian) before the venv when none is found: the example
# reports' numbers are the kernel's, and tests/test_examples.py compares them byte for byte.
compiler:
	@command -v cc >/dev/null || command -v gcc >/dev/null || { if command -v apt-get >/dev/null; then \
	  $(APT_INSTALL) gcc libc6-dev; else echo "make: no C compiler: the capture takes its slower torch path" >&2; fi; }

# The report's PDF embeds exactly DejaVu Sans, DejaVu Sans Bold and DejaVu Sans Mono (pdffonts on
# any example_reports/*/report.pdf), all three from Debian's fonts-dejavu-core. With them installed
# a first PDF has the example's bytes; without them fontconfig substitutes whatever is there.
fonts:
	@command -v fc-list >/dev/null && fc-list : file | grep -q '/DejaVuSans\.ttf' \
	  && fc-list : file | grep -q '/DejaVuSans-Bold\.ttf' && fc-list : file | grep -q '/DejaVuSansMono\.ttf' \
	  || { if command -v apt-get >/dev/null; then $(APT_INSTALL) fonts-dejavu-core fontconfig; \
	       else echo "make: install the DejaVu fonts (Sans, Sans Bold, Sans Mono): the PDF will differ from the examples without them" >&2; fi; }

# The PDF tests need pdftoppm/pdftotext and the browser test needs Chromium (Debian packages).
system-deps: fonts
	@command -v pdftoppm >/dev/null && command -v chromium >/dev/null || { $(APT_INSTALL) poppler-utils chromium; }

# Uses DATA when given; otherwise the CIFAR-10 JPEG copy beside the checkout when there is one
# (unpacked into a temporary folder and renamed, so a failed unpack leaves nothing half-done),
# otherwise torchvision's download into the cache.
report: $(BIN)/nnviz-report fonts
	@data='$(DATA)'; \
	if [ -z "$$data" ] && [ -f $(CIFAR_ARCHIVE) ]; then \
	  data=$(CACHE)/cifar10-jpg/test; \
	  if [ ! -d "$$data" ]; then \
	    mkdir -p $(CACHE) && tmp=$$(mktemp -d $(CACHE)/.cifar10-jpg.XXXXXX) \
	      && { tar -xzf $(CIFAR_ARCHIVE) -C "$$tmp" && mv "$$tmp" $(CACHE)/cifar10-jpg; } \
	      || { rm -rf "$$tmp"; rmdir $(CACHE) 2>/dev/null; exit 2; }; \
	  fi; \
	fi; \
	$(BIN)/nnviz-report report --model '$(MODEL)' --data "$${data:-cifar10}" --per-class '$(PER_CLASS)' -o '$(OUT)' \
	  || { code=$$?; if [ $$code = 2 ] && [ "$${data:-cifar10}" = cifar10 ]; then \
	    echo "make: to read a local copy of CIFAR-10, pass it through make: make report DATA=/path/to/cifar10-folder (an ImageFolder with the ten class folders)" >&2; fi; \
	    exit $$code; }

test: $(BIN)/nnviz-report system-deps
	$(BIN)/python -m pytest -n 2 -q

# example_reports/ (lenet, resnet20, compare-resnet20) from the shipped weights, and the README's
# screenshots in docs/screenshots/ (headless Chromium). Deterministic: tests/test_examples.py checks them.
examples: $(BIN)/nnviz-report system-deps
	$(BIN)/python scripts/make_examples.py --screenshots

# graphviz's dot lays out torchview's diagram, the peer of the flow diagram's timing.
bench: $(BIN)/nnviz-report
	$(PIP_ENV) $(BIN)/pip install --quiet -e '.[bench]'
	@command -v dot >/dev/null || $(APT_INSTALL) graphviz \
	  || echo "make: graphviz's dot is missing: torchview is timed without its layout" >&2
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) out build *.egg-info nnviz_report/stats/_fused*.so
