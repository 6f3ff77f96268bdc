"""Headers every response carries, whichever path answers it."""

NOSNIFF = ("X-Content-Type-Options", "nosniff")
PRIVATE = ("Cache-Control", "private, no-store")
SANDBOX = ("Content-Security-Policy", "sandbox")


def security_headers(*, authenticated: bool, uploaded_content: bool) -> list[tuple[str, str]]:
    headers = [NOSNIFF]
    if authenticated:
        headers.append(PRIVATE)
    if uploaded_content:
        headers.append(SANDBOX)
    return headers
