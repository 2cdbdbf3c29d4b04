# clicksam: the two quick-start commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
MODEL  ?= vit_b
TORCH  ?= torch==2.13.0

LS_VENV ?= .venv-ls
LS_REQUIREMENTS := tests/labelstudio/requirements-ls.txt

.PHONY: demo test docs venv dev browser label-studio-venv clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install $(TORCH)
	$(PIP) install -e .
	touch $@

# Test-only reference packages of the SAM 2 and HQ-SAM parity tests, installed without their
# dependencies: they would replace the CPU torch with a CUDA build (their light requirements,
# hydra-core and iopath, come with the [dev] extra; torchvision and timm have test stand-ins).
SAM2_REF   ?= sam2==1.1.0
HQ_SAM_REF ?= segment-anything-hq==0.3

$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -e '.[dev]'
	SAM2_BUILD_CUDA=0 $(PIP) install --no-deps --no-build-isolation $(SAM2_REF)
	$(PIP) install --no-deps $(HQ_SAM_REF)
	touch $@

venv: $(VENV)/.base
dev: $(VENV)/.dev

# Headless Chromium for the web annotator's end-to-end test (Debian's package).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Label Studio in its own environment (it pins Django 5, pandas, attr) for the backend's end-to-end
# test; rebuilt only when its frozen requirements change.
$(LS_VENV)/.done: $(LS_REQUIREMENTS)
	rm -rf $(LS_VENV)
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip --disable-pip-version-check -q install -r $(LS_REQUIREMENTS)
	touch $@

label-studio-venv: $(LS_VENV)/.done

demo: $(VENV)/.base
	$(VENV)/bin/clicksam demo --model $(MODEL)

test: $(VENV)/.dev browser label-studio-venv
	CLICKSAM_LS_VENV=$(abspath $(LS_VENV)) $(PY) -m pytest -q

# The documentation site (guides + API reference from the docstrings) in site/; warnings are
# errors. The test suite builds it too (tests/docs/test_docs.py).
docs: $(VENV)/.dev
	$(PY) -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) $(LS_VENV) runs site
