# Video Upscaler Pro: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test test-slow test-fast dev serve bench browser clean

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

## make test-slow: the slow tier (20+ kill -9 trials, parallel-load runs); not part of `make test`
test-slow: venv
	VUP_SLOW_TIER=1 $(PY) -m pytest -q -p no:cacheprovider -m soak

test-fast: venv
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

## make dev: Dagster webserver + daemon on 127.0.0.1:3000 for the workspace
dev: venv
	$(VENV)/bin/vup dev

## make serve: the web page (http://127.0.0.1:7860) + Dagster UI (http://127.0.0.1:3000) + daemon; Ctrl-C stops all
serve: venv
	$(VENV)/bin/vup serve

bench: venv
	$(PY) -m benchmarks.side_by_side

## make browser: Debian's chromium (and an emoji font) for the real-browser test; Playwright drives it, no download
browser:
	@if [ -x /usr/bin/chromium ] && [ -d /usr/share/fonts/truetype/noto ]; then echo "chromium: $$(/usr/bin/chromium --version)"; \
	elif command -v apt-get >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null \
		&& /usr/bin/chromium --version; \
	else echo "no apt-get: install Chromium at /usr/bin/chromium (or set VUP_CHROMIUM) for the browser test"; fi

clean:
	rm -rf $(VENV) build *.egg-info
