# cellcutter_nb — the two commands of the README do all set-up on a fresh machine:
#   make reproduce   (rerun every notebook; PROFILE=smoke|quick|full, default quick)
#   make test        (the test suite CI runs)
#   make test-fast   (the inner loop: pytest -m "not slow", under a minute)
#   make lab         (JupyterLab on notebooks/; NO_BROWSER=1 to only print its address)
PYTHON ?= python3
VENV   ?= .venv
PROFILE ?= quick
ONLY ?=
NO_BROWSER ?=
LAB_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: reproduce test test-fast lint lab venv clean-results

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tf,notebook,test]'
	touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/python -m cellcutter_nb reproduce --profile $(PROFILE) $(if $(ONLY),--only $(ONLY),)

# JupyterLab runs as root only when told so (containers, CI machines)
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,) \
		$(if $(NO_BROWSER),--no-browser,) $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

clean-results:
	rm -rf results/smoke
