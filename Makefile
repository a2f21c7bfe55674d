# cellcutter_nb — the two commands of the README do all set-up on a fresh machine:
#   make reproduce   (rerun every notebook; PROFILE=smoke|quick|full, default quick)
#   make test        (the test suite CI runs)
#   make test-fast   (the inner loop: pytest -m "not slow", under a minute)
PYTHON ?= python3
VENV   ?= .venv
PROFILE ?= quick
ONLY ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: reproduce test test-fast lint venv clean-results

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tf,notebook,test]'
	touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/python -m cellcutter_nb reproduce --profile $(PROFILE) $(if $(ONLY),--only $(ONLY),)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

clean-results:
	rm -rf results/smoke
