"""DRF viewset of the audit log (served under /api/ops/, behind the ops switch)."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from audit import selectors
from audit.api.serializers import AuditQuerySerializer
from etcdmonitor_site.api import OpsEnabled, validated
from etcdmonitor_site.policy import RoutePolicy


class AuditLogViewSet(viewsets.ViewSet):
    """The audit log: a page of JSON, or the whole filtered set as CSV."""

    permission_classes = [RoutePolicy, OpsEnabled]

    @extend_schema(
        parameters=[AuditQuerySerializer],
        responses={200: OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR},
    )
    def list(self, request):
        query = validated(AuditQuerySerializer, request.query_params)
        entries = selectors.audit_entries(
            operation=query["operation"],
            username=query["username"],
            success=query["success"],
            since=query["since"],
            until=query["until"],
        )
        if query["format"] == "csv":
            response = StreamingHttpResponse(
                selectors.audit_csv_lines(entries.iterator(chunk_size=500)),
                content_type="text/csv; charset=utf-8",
            )
            response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
            return response
        return Response(
            selectors.audit_page(entries, page=query["page"], page_size=query["page_size"])
        )
