"""The append-only, hash-chained audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Append-only, hash-chained record of every create and state change.

    `hash` covers every field of the event (scheme 2: the actor link too) and the
    previous event's hash; `mac` is a keyed HMAC of `hash` with a key the database
    does not hold; the chain's head is also appended to an anchor file outside the
    database. What that detects, and what not: governance/services/audit.py.
    """

    # 1: events written before the actor link was hashed (no mac); 2: current.
    scheme = models.PositiveSmallIntegerField(default=2, db_default=1, editable=False)
    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(editable=False)
    # PROTECT: the hash covers the link, so a user who acted is deactivated, not
    # deleted (SET_NULL would rewrite their events and break the chain).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    actor_name = models.CharField(max_length=150, editable=False)
    action = models.CharField(max_length=80, editable=False)
    object_type = models.CharField(max_length=80, editable=False)
    object_id = models.CharField(max_length=64, editable=False)
    object_repr = models.CharField(max_length=300, editable=False)
    before = models.JSONField(null=True, editable=False)
    after = models.JSONField(null=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)
    mac = models.CharField(max_length=64, default="", db_default="", editable=False)

    class Meta:
        ordering = ["-sequence"]
        indexes = [
            # "History of this object" on every change page (object_type and
            # object_id), and the admin search by object id, which has no type.
            models.Index(
                fields=["object_id", "object_type"], name="governance_audit_objid_idx"
            ),
            models.Index(fields=["-created_at"], name="governance_audit_created_idx"),
            # Admin list filters ?action= and ?object_type=, their sidebars'
            # SELECT DISTINCT (an index-only scan instead of reading every event),
            # and the admin's exact search by action and by actor.
            models.Index(fields=["action"], name="governance_audit_action_idx"),
            models.Index(fields=["object_type"], name="governance_audit_type_idx"),
            models.Index(fields=["actor_name"], name="governance_audit_actor_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.actor_name} {self.action} {self.object_type} "
            f"“{self.object_repr}” at {self.created_at:%Y-%m-%d %H:%M:%S}"
        )
