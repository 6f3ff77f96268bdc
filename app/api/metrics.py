"""GET /metrics: Prometheus's scrape, behind METRICS_TOKEN."""

from flask import Blueprint, Response

from .. import ratelimit
from ..services import scrape as scrape_service
from . import parsing

bp = Blueprint("metrics", __name__)


def _holds_token() -> bool:
    return scrape_service.holds_token(parsing.bearer_token())


# Without the token, limited as any keyless request is (RATE_LIMIT_ANONYMOUS,
# per address): a bound on guessing it. With it, never limited, so Prometheus
# still scrapes while Redis, which keeps the limits, is down.
@bp.get("/metrics")
@ratelimit.exempt_when(_holds_token)
def scrape():
    body, content_type = scrape_service.scrape(parsing.bearer_token())
    return Response(body, content_type=content_type)
