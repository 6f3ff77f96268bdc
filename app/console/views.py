"""The web console: server-rendered pages over a tenant's cache and artifacts.

Views parse, make one service call and render; a signed-in session speaks
for one key of one tenant (console/session.py), and only admin keys change
anything.
"""

from collections.abc import Callable
from functools import wraps

from flask import Blueprint, redirect, render_template, request, url_for

from ..api import parsing as api_parsing
from ..api import responses
from ..errors import Forbidden
from ..services import insight, links, sessions, signin, tenants, tool_cache
from ..services.artifacts import lifecycle, reads
from . import charts, parsing
from . import session as console_session
from .session import current_user

bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/console/static",
)
bp.before_request(console_session.check_csrf)
bp.after_request(console_session.save_cookie)


def signed_in(view: Callable) -> Callable:
    """Pages for a signed-in person only; others go to the sign-in page."""

    @wraps(view)
    def wrapper(**kwargs):
        user = current_user()
        if user is None:
            return redirect(url_for("console.sign_in"))
        return view(user, **kwargs)

    return wrapper


def admin_only(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(user, **kwargs):
        if not user.is_admin:
            raise Forbidden("Only an admin key may do this (flask keys create SLUG --admin makes one).")
        return view(user, **kwargs)

    return wrapper


# -- signing in and out ------------------------------------------------------


@bp.get("/")
def sign_in():
    if current_user() is not None:
        return redirect(url_for("console.overview"))
    return render_template("console/sign_in.html")


@bp.post("/")
def sign_in_post():
    # An attempt is an unauthenticated request, charged per address by the
    # rate limiter before it gets here; a refused one never reaches the check.
    key_id = signin.sign_in(request.form.get("key", ""))
    console_session.sign_in(key_id)
    return redirect(url_for("console.overview"), code=303)


@bp.post("/console/sign-out")
def sign_out():
    console_session.sign_out()
    return redirect(url_for("console.sign_in"), code=303)


# -- overview and build cache ------------------------------------------------


@bp.get("/console/")
@signed_in
def overview(user):
    summary = insight.overview(user.tenant, parsing.period(request.args))
    return render_template("console/overview.html", o=summary, charts=charts.overview_charts(summary))


@bp.get("/console/cache")
@signed_in
def build_cache(user):
    tenant = user.tenant
    return render_template(
        "console/cache.html",
        tenant=tenant,
        statuses=tenants.CACHE_STATUSES,
        max_retention_days=tenants.MAX_RETENTION_DAYS,
        tools={tool: tool_cache.tool_enabled(tenant, tool) for tool in tool_cache.TOOLS},
        largest=insight.largest_entries(tenant),
        most_read=insight.most_read_entries(tenant),
        evicting=insight.evicting_soon(tenant),
    )


@bp.post("/console/cache")
@signed_in
@admin_only
def update_cache_settings(user):
    tenants.update_tenant(user.tenant, **parsing.cache_settings(request.form))
    return redirect(url_for("console.build_cache", saved=1), code=303)


# -- artifacts and sessions ----------------------------------------------------


@bp.get("/console/artifacts")
@signed_in
def artifacts(user):
    page = reads.list_artifacts(user.tenant, **parsing.artifact_listing(request.args))
    return render_template("console/artifacts.html", page=page, args=request.args)


@bp.get("/console/sessions")
@signed_in
def session_list(user):
    page = sessions.list_sessions(user.tenant, **parsing.session_listing(request.args))
    return render_template("console/sessions.html", page=page, args=request.args)


@bp.get("/console/artifacts/<artifact_id>")
@signed_in
def artifact(user, artifact_id: str):
    return render_template("console/artifact.html", artifact=reads.get_artifact(user.tenant, artifact_id))


@bp.get("/console/artifacts/<artifact_id>/download")
@signed_in
def download_artifact(user, artifact_id: str):
    item = reads.downloadable_artifact(user.tenant, artifact_id)
    return responses.send_download(
        reads.open_download(item, with_body=True),
        content_type=item.content_type,
        download_name=item.filename,
    )


@bp.post("/console/artifacts/<artifact_id>/links")
@signed_in
@admin_only
def create_link(user, artifact_id: str):
    base_url = api_parsing.base_url()
    link = links.create_link(user.tenant, artifact_id, expires_in=parsing.link_seconds(request.form))
    return render_template(
        "console/artifact.html",
        artifact=reads.get_artifact(user.tenant, artifact_id),
        link=link,
        link_url=f"{base_url}/dl/{link.id}",
    )


@bp.post("/console/artifacts/<artifact_id>/delete")
@signed_in
@admin_only
def delete_artifact(user, artifact_id: str):
    lifecycle.delete_artifact(user.tenant, artifact_id)
    return redirect(url_for("console.artifacts", deleted=artifact_id), code=303)


# -- keys --------------------------------------------------------------------


@bp.get("/console/keys")
@signed_in
@admin_only
def keys(user):
    return render_template("console/keys.html", keys=tenants.list_keys(user.tenant))


@bp.post("/console/keys")
@signed_in
@admin_only
def create_key(user):
    created, plaintext = tenants.create_key(user.tenant, admin=parsing.key_is_admin(request.form))
    return render_template(
        "console/keys.html", keys=tenants.list_keys(user.tenant), created=created, plaintext=plaintext
    )


@bp.post("/console/keys/<int:key_id>/revoke")
@signed_in
@admin_only
def revoke_key(user, key_id: int):
    tenants.revoke_key(user.tenant, key_id)
    return redirect(url_for("console.keys", revoked=key_id), code=303)
