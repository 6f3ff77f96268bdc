"""Requests that only read run without a transaction.

A GET or HEAD reads a few rows and writes at most one single-statement
update (a cache entry's last-read time). PostgreSQL under READ COMMITTED gives
every statement its own snapshot, transaction or not, so wrapping these in
one adds only its cost: a BEGIN round trip before the first query and a
ROLLBACK at teardown, two of a cache HEAD's four round trips. Writes that must
be atomic belong to the methods that change things, which keep transactions.
"""

from flask import Flask, request

from .extensions import db

READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


def _without_transaction() -> None:
    if request.method in READ_ONLY_METHODS:
        # The pool puts the connection's isolation level back when the
        # session returns it; a commit returns it early, and anything after
        # that runs in a transaction again, as it always did.
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def init_app(app: Flask) -> None:
    # Before the rate limiter's hook, whose key lookup is the first query.
    app.before_request(_without_transaction)
