# One command to set up and run each thing; the virtual environment lives in .venv.
# SECRET_KEY here is for local use only; production sets its own (docs/settings.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export SECRET_KEY ?= eam-local-only-insecure-key

.PHONY: setup test demo serve migrate clean-var

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

# Runs the whole suite on SQLite, or on PostgreSQL when DATABASE_URL points there.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

clean-var:
	rm -rf var
