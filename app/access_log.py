"""gunicorn's access log, with capability tokens redacted.

A public link (/dl/<id>), a signed download (/v1/blobs/<token>) or a signed
upload (/v1/uploads/<token>) is its own credential: whoever reads it in a log
could download or upload with it. The log keeps the route and the kind of
token (`lnk_`), never the secret part; and never an API key sent as HTTP
Basic's user name, nor an Authorization or Cookie value a custom format names.
"""

import re
from urllib.parse import unquote

from gunicorn.glogging import Logger

# A link id's `lnk_` says what it is and nothing secret; a signed token has
# no such prefix, and is redacted whole.
_CAPABILITY = re.compile(r"(/dl/(?:lnk_)?|/v1/blobs/|/v1/uploads/)[^/?#\s]+")
REDACTED = r"\1[redacted]"

# Every atom that can hold the request's path: the request line, the path,
# the referring page, and the same values read from the environ or headers.
_PATH_ATOMS = ("r", "U", "f", "{raw_uri}e", "{path_info}e", "{referer}i")


_CREDENTIAL_ATOM = re.compile(r"^\{(http_)?(proxy[-_])?(authorization|cookie)\}[ie]$", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the token of every capability URL in it replaced."""
    text = _CAPABILITY.sub(REDACTED, text)
    if "%" in text:
        # The router decodes the path: /d%6C/<id> is /dl/<id> too.
        decoded = unquote(text)
        if _CAPABILITY.search(decoded):
            return _CAPABILITY.sub(REDACTED, decoded)
    return text


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in _PATH_ATOMS:
            value = atoms.get(name)
            if isinstance(value, str):
                atoms[name] = redact(value)
        # gunicorn logs HTTP Basic's user name as `u`; Hoard names no users,
        # and a build tool configured with the key as its user name would
        # write the key to the log. Credentials read from the headers or the
        # environ (`{authorization}i`, `{http_authorization}e`, the console's
        # session cookie) are redacted whatever the format names.
        atoms["u"] = "-"
        for name in list(atoms):
            if _CREDENTIAL_ATOM.search(name):
                atoms[name] = "[redacted]"
        return atoms
