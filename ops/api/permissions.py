"""Access rules of the ops API."""

from django.conf import settings
from rest_framework.permissions import BasePermission


class OpsEnabled(BasePermission):
    """OPS_ENABLED=false turns every /api/ops/* route into 403 {"error": "ops disabled"}."""

    message = "ops disabled"

    def has_permission(self, request, view) -> bool:
        return settings.OPS_ENABLED
