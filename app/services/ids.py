"""Random identifiers: a prefix and letters and digits from the OS's CSPRNG."""

import secrets
import string

ALPHANUMERIC = string.ascii_letters + string.digits


def random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))
