# Hoard: `make run` to try it, `make test` to test it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi.py

.PHONY: run test lint format bench bench-memory migrate clean

$(BIN)/activate: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

migrate: $(BIN)/activate
	$(BIN)/flask db upgrade

run: migrate
	$(BIN)/flask demo --url http://127.0.0.1:8000
	@echo "Serving on http://127.0.0.1:8000 (Ctrl-C to stop)"
	$(BIN)/gunicorn -c gunicorn.conf.py --bind 127.0.0.1:8000 wsgi:app

test: $(BIN)/activate
	$(BIN)/ruff check app tests bench config.py wsgi.py
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(BIN)/activate
	$(BIN)/ruff check app tests bench config.py wsgi.py
	$(BIN)/ruff format --check app tests bench config.py wsgi.py

format: $(BIN)/activate
	$(BIN)/ruff format app tests bench config.py wsgi.py

bench-memory: $(BIN)/activate
	$(BIN)/python bench/memory.py

bench: $(BIN)/activate
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache
