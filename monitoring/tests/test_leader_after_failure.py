"""A member that stops answering is no longer shown as the leader (found by the fault suite)."""

import pytest

from monitoring.models import Member
from monitoring.services import collect_cluster

pytestmark = pytest.mark.django_db


def _leaders() -> set[str]:
    return set(Member.objects.filter(is_leader=True).values_list("member_id", flat=True))


def test_killing_the_leader_leaves_exactly_the_new_leader_marked(etcd_cluster_factory):
    cluster = etcd_cluster_factory()
    collect_cluster()
    (old_leader,) = _leaders()
    by_id = {m.member_id: m for m in Member.objects.all()}
    old_process = next(
        local for local in cluster.members if local.client_url == by_id[old_leader].scrape_url
    )

    cluster.kill_member(old_process)
    survivors = [m for m in cluster.members if m is not old_process]
    cluster.wait_healthy(survivors)
    collect_cluster()

    leaders = _leaders()
    assert len(leaders) == 1 and old_leader not in leaders
    assert Member.objects.get(member_id=old_leader).collector_up is False
