"""WSGI entry point: `gunicorn wsgi:app`, and `flask --app wsgi ...`."""

import logging

from app import create_app

app = create_app()
# The process's logging is the entry point's to set up, not the factory's:
# tests and tools build apps without reconfiguring the root logger.
logging.basicConfig(level=app.config["LOG_LEVEL"])
