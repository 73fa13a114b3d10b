"""StatusResponse fields newer than pyetcd's protos, decoded from bytes serialized here.

etcd 3.6 is not installable on this machine, so its additions are checked as a parser test:
the bytes a 3.6 member sends are built field by field from rpc.proto's numbering
(raftAppliedIndex 7, dbSizeInUse 9, isLearner 10, storageVersion 11, dbSizeQuota 12,
downgradeInfo 13 {enabled 1, targetVersion 2}); the live 3.4/3.5 members are checked in
test_gateway.py.
"""

from pyetcd import etcdrpc

from etcdgateway.client import DowngradeInfo, decode_status


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _known_part(version: str) -> bytes:
    header = etcdrpc.ResponseHeader(cluster_id=7, member_id=42, revision=99, raft_term=3)
    return etcdrpc.StatusResponse(
        header=header, version=version, dbSize=8192, leader=42, raftIndex=120, raftTerm=3
    ).SerializeToString()


def test_a_36_status_yields_storage_version_quota_and_downgrade():
    downgrade = _field_varint(1, 1) + _field_bytes(2, b"3.5.0")
    wire = (
        _known_part("3.6.4")
        + _field_varint(7, 118)
        + _field_varint(9, 4096)
        + _field_varint(10, 0)
        + _field_bytes(11, b"3.6.0")
        + _field_varint(12, 8 * 1024**3)
        + _field_bytes(13, downgrade)
    )

    status = decode_status(etcdrpc.StatusResponse.FromString(wire))

    assert (status.member_id, status.leader_id, status.is_leader) == (42, 42, True)
    assert (status.version, status.db_size, status.db_size_in_use) == ("3.6.4", 8192, 4096)
    assert (status.raft_index, status.raft_applied_index, status.revision) == (120, 118, 99)
    assert status.storage_version == "3.6.0"
    assert status.db_size_quota == 8 * 1024**3
    assert status.downgrade == DowngradeInfo(enabled=True, target_version="3.5.0")
    assert status.is_learner is False


def test_a_34_status_has_none_of_the_36_fields():
    wire = _known_part("3.4.23") + _field_varint(9, 4096) + _field_varint(10, 1)

    status = decode_status(etcdrpc.StatusResponse.FromString(wire))

    assert status.storage_version == "" and status.db_size_quota is None
    assert status.downgrade is None
    assert status.is_learner is True and status.db_size_in_use == 4096


def test_a_zero_or_negative_quota_is_not_a_quota():
    # int64 on the wire: a negative value is ten bytes of two's complement.
    for quota in (0, -1):
        wire = _known_part("3.6.0") + _field_varint(12, quota)
        assert decode_status(etcdrpc.StatusResponse.FromString(wire)).db_size_quota is None


def test_a_downgrade_not_in_progress_decodes_as_disabled():
    wire = _known_part("3.6.0") + _field_bytes(13, b"")

    status = decode_status(etcdrpc.StatusResponse.FromString(wire))

    assert status.downgrade == DowngradeInfo(enabled=False, target_version="")


def test_v2_unavailable_names_the_cause_by_version():
    from etcdgateway.v2 import EtcdV2Unavailable, v2_unavailable_message

    for version in ("3.4.23", "3.5.30", ""):
        assert v2_unavailable_message(version) == EtcdV2Unavailable.default_message
        assert "--enable-v2" in v2_unavailable_message(version)
    for version in ("3.6.0", "3.7.1", "4.0.0"):
        message = v2_unavailable_message(version)
        assert message == f"etcd v2 API is not available (etcd {version} has no v2 API)"
