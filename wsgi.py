"""WSGI entry point: `gunicorn wsgi:app`, and `flask --app wsgi ...`."""

import logging

from app import create_app
from config import VAR_DIR

# The zero-config database, storage and secret live here; the process that
# serves (or migrates) makes it, not the import of config.
VAR_DIR.mkdir(parents=True, exist_ok=True)
app = create_app()
# The process's logging is the entry point's to set up, not the factory's:
# tests and tools build apps without reconfiguring the root logger.
logging.basicConfig(level=app.config["LOG_LEVEL"])
