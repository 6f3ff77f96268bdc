"""Service rules tested on their own, with data from tests/factories.py."""

from datetime import timedelta

import pytest

from app.errors import (
    ArtifactAlreadyDeleted,
    ArtifactNotFound,
    QuotaExceeded,
    TtlExceedsPlanLimit,
)
from app.services import cache, links
from app.services.artifacts import lifecycle, reads
from app.services.plans import UPGRADE_URL
from tests.factories import make_artifact, make_cache_entry, make_tenant


def test_a_listing_holds_live_artifacts_only(app):
    tenant, _ = make_tenant()
    kept = make_artifact(tenant, filename="kept.txt")
    lifecycle.delete_artifact(tenant, make_artifact(tenant, filename="deleted.txt").id)
    page = reads.list_artifacts(tenant, filters=reads.ListFilters(), limit=10, after=None)
    assert [item.id for item in page.items] == [kept.id]
    assert page.next_after is None


def test_a_batch_answers_each_id_as_a_single_lookup_would(app):
    tenant, _ = make_tenant()
    other, _ = make_tenant("globex")
    live = make_artifact(tenant, b"live", filename="live.txt")
    deleted = make_artifact(tenant)
    lifecycle.delete_artifact(tenant, deleted.id)
    theirs = make_artifact(other)
    ids = [deleted.id, theirs.id, "nope", live.id]

    entries = reads.download_urls(tenant, ids, base_url="https://hoard.example")

    assert [entry.artifact_id for entry in entries] == ids
    assert [type(entry.error) for entry in entries[:3]] == [
        ArtifactAlreadyDeleted,
        ArtifactNotFound,
        ArtifactNotFound,
    ]
    assert entries[3].error is None
    assert entries[3].ticket.artifact.id == live.id
    assert entries[3].ticket.url.startswith("https://hoard.example/v1/blobs/")
    assert reads.artifact_for_download_token(entries[3].ticket.url.rsplit("/", 1)[1]).id == live.id


def test_deleting_twice_is_refused(app):
    tenant, _ = make_tenant()
    artifact = make_artifact(tenant)
    lifecycle.delete_artifact(tenant, artifact.id)
    with pytest.raises(ArtifactAlreadyDeleted):
        lifecycle.delete_artifact(tenant, artifact.id)


def test_a_free_plan_refusal_offers_the_upgrade_and_a_pro_one_does_not(app):
    free, _ = make_tenant("freeco", plan="free")
    pro, _ = make_tenant("acme")
    with pytest.raises(TtlExceedsPlanLimit) as refused:
        lifecycle.extend_ttl(free, make_artifact(free).id, int(timedelta(days=91).total_seconds()))
    assert refused.value.extra == {"upgrade_url": UPGRADE_URL}
    with pytest.raises(TtlExceedsPlanLimit) as refused:
        lifecycle.extend_ttl(pro, make_artifact(pro).id, int(timedelta(days=366).total_seconds()))
    assert refused.value.extra == {}  # no plan above pro


def test_a_free_link_longer_than_the_plan_offers_the_upgrade(app):
    free, _ = make_tenant("freeco", plan="free")
    with pytest.raises(QuotaExceeded) as refused:
        links.create_link(free, make_artifact(free).id, expires_in=31 * 86400)
    assert refused.value.extra == {"upgrade_url": UPGRADE_URL}


def test_a_query_answers_each_hash(app):
    tenant, _ = make_tenant()
    make_cache_entry(tenant, "abc", b"12345", duration_ms=7, tag="t")
    answer = cache.query_entries(tenant, ["abc", "missing", "../x"])
    assert answer.entries["abc"].size_bytes == 5
    assert "missing" not in answer.entries
    assert answer.invalid == {"../x"}
