"""GET /metrics: Prometheus's scrape, behind METRICS_TOKEN."""

from flask import Blueprint, Response

from ..services import scrape as scrape_service
from . import parsing

bp = Blueprint("metrics", __name__)


# Limited as any keyless request is (RATE_LIMIT_ANONYMOUS, per address): far
# above a scrape every few seconds, and a bound on guessing the token.
@bp.get("/metrics")
def scrape():
    body, content_type = scrape_service.scrape(parsing.bearer_token())
    return Response(body, content_type=content_type)
