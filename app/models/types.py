"""Column types shared by the models."""

from sqlalchemy import String
from sqlalchemy.dialects import postgresql

# Keyset pagination orders by these ids; "C" makes PostgreSQL compare them
# byte by byte, as SQLite does, rather than by a locale's collation.
BYTE_ORDER_ID = String(24).with_variant(postgresql.VARCHAR(24, collation="C"), "postgresql")
BYTE_ORDER_LABEL = String(128).with_variant(postgresql.VARCHAR(128, collation="C"), "postgresql")
