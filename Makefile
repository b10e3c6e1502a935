# Video Upscaler Pro: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test test-fast dev bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## make demo: install, make a sample clip with audio, upscale it x4 with Real-ESRGAN, print where things are
demo: venv
	$(VENV)/bin/vup demo

## make test: install if needed, then run the whole suite
test: venv
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: venv
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

## make dev: Dagster webserver + daemon on 127.0.0.1:3000 for the workspace
dev: venv
	$(VENV)/bin/vup dev

bench: venv
	$(PY) -m benchmarks.side_by_side

clean:
	rm -rf $(VENV) build *.egg-info
