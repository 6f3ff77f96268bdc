"""GET /metrics: Prometheus's scrape, behind METRICS_TOKEN."""

from flask import Blueprint, Response

from .. import ratelimit
from ..services import scrape as scrape_service
from . import parsing

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@ratelimit.exempt  # the token holder is the operator's Prometheus
def scrape():
    body, content_type = scrape_service.scrape(parsing.bearer_token())
    return Response(body, content_type=content_type)
