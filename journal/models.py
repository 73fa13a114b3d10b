"""The change journal: every KV change etcd reported for a monitored cluster, with the gaps.

Clusters are named by a string `cluster_id` ("default" for the configured cluster), the same id
the KV views write into audit entries, so a journal event and the audit entry of the write that
caused it can be joined later.
"""

from django.db import models


class JournalEvent(models.Model):
    """One put or delete of one key at one revision (a transaction's changes share a revision).

    Keys and values are bytes, as etcd's are. `value` holds the put's value when it is at most
    JOURNAL_MAX_VALUE_BYTES, else null; size and SHA-256 are always kept. A delete has no value
    of its own: `prev_value*` describe the value it deleted (etcd's prev_kv), under the same
    size rule. `observed_at` is when the journal stored it (etcd keeps no time).
    """

    class Kind(models.TextChoices):
        PUT = "put"
        DELETE = "delete"

    cluster_id = models.CharField(max_length=64)
    revision = models.BigIntegerField()
    key = models.BinaryField()
    kind = models.CharField(max_length=6, choices=Kind.choices)
    lease = models.BigIntegerField(default=0)
    value = models.BinaryField(null=True)
    value_size = models.IntegerField(default=0)
    value_sha256 = models.BinaryField(max_length=32, null=True)
    prev_value = models.BinaryField(null=True)
    prev_value_size = models.IntegerField(null=True)
    prev_value_sha256 = models.BinaryField(max_length=32, null=True)
    observed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["cluster_id", "revision", "key"]
        constraints = [
            # A resumed or restarted worker can never store one change twice.
            models.UniqueConstraint(
                fields=["cluster_id", "revision", "key"], name="journal_event_once"
            ),
        ]
        indexes = [
            models.Index(fields=["cluster_id", "key", "revision"], name="journal_key"),
            # The recently deleted keys, newest first: deletes are a sliver of the rows, so
            # paging them through the unique index would read past every put in between.
            models.Index(
                fields=["cluster_id", "-revision", "key"],
                name="journal_deletes",
                condition=models.Q(kind="delete"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cluster_id}@{self.revision} {self.kind} {bytes(self.key)!r}"


class JournalGap(models.Model):
    """Revisions [from_revision, to_revision] the journal never saw: etcd had compacted them
    before the worker read them (e.g. it was stopped too long). Shown, never papered over."""

    cluster_id = models.CharField(max_length=64)
    from_revision = models.BigIntegerField()
    to_revision = models.BigIntegerField()
    detected_at = models.DateTimeField()

    class Meta:
        ordering = ["cluster_id", "from_revision"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster_id", "from_revision"], name="journal_gap_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cluster_id}: revisions {self.from_revision}-{self.to_revision} missing"

    def to_pair(self) -> list[int]:
        """The `[from_rev, to_rev]` pair of the history API's `gaps`."""
        return [self.from_revision, self.to_revision]


class JournalCursor(models.Model):
    """Where a cluster's journal stands: every change up to `revision` is stored (or excluded,
    or inside a recorded gap); the worker resumes at `revision + 1`. Written in the same
    transaction as the events, so a restart neither loses nor repeats one. `etcd_revision` is
    the newest store revision the watch reported, for the lag in revisions."""

    cluster_id = models.CharField(max_length=64, primary_key=True)
    revision = models.BigIntegerField()
    etcd_revision = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.cluster_id} at revision {self.revision}"
