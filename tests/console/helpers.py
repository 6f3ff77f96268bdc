"""Driving the console through Flask's test client: the CSRF token is read
from the page's form, as a browser would submit it."""

import re

from werkzeug.datastructures import MultiDict

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client, path: str = "/") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return TOKEN.search(page.get_data(as_text=True)).group(1)


def sign_in(client, key: str):
    response = client.post("/", data={"key": key, "csrf_token": csrf(client)})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return response


def post(client, path: str, data: dict | None = None, *, token_from: str = "/console/artifacts"):
    """A form post carrying the session's CSRF token; a MultiDict keeps its
    repeated fields (checkboxes)."""
    fields = MultiDict(data or {})
    fields["csrf_token"] = csrf(client, token_from)
    return client.post(path, data=fields)
