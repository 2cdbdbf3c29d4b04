# clicksam: the two quick-start commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
MODEL  ?= vit_b
TORCH  ?= torch==2.13.0

.PHONY: demo test venv dev browser clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install $(TORCH)
	$(PIP) install -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -e '.[dev]'
	touch $@

venv: $(VENV)/.base
dev: $(VENV)/.dev

# Headless Chromium for the web annotator's end-to-end test (Debian's package).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: $(VENV)/.base
	$(VENV)/bin/clicksam demo --model $(MODEL)

test: $(VENV)/.dev browser
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
