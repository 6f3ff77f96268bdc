"""Extensions, created unbound and bound to the app in create_app()."""

from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints let Alembic alter them identically on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _rate_limit_key() -> str:
    # Imported here: the key function needs auth, which needs `db` from here.
    from .ratelimit import rate_limit_key

    return rate_limit_key()


def _request_limits() -> str:
    from .ratelimit import request_limits

    return request_limits()


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
limiter = Limiter(key_func=_rate_limit_key, default_limits=[_request_limits])
