"""HTTP routes of the alerts app, mounted under /api/ by the project urls."""

from django.urls import path

from alerts.api.views import AlertViewSet, RuleViewSet, SilenceViewSet

urlpatterns = [
    path("alerts", AlertViewSet.as_view({"get": "list"}), name="alerts"),
    path("alerts/rules", RuleViewSet.as_view({"get": "list"}), name="alert-rules"),
    path(
        "alerts/rules/<str:pk>",
        RuleViewSet.as_view({"patch": "partial_update"}),
        name="alert-rule",
    ),
    path(
        "alerts/silences",
        SilenceViewSet.as_view({"get": "list", "post": "create"}),
        name="alert-silences",
    ),
    path(
        "alerts/silences/<int:pk>",
        SilenceViewSet.as_view({"delete": "destroy"}),
        name="alert-silence",
    ),
    path("alerts/<int:pk>", AlertViewSet.as_view({"get": "retrieve"}), name="alert"),
    path("alerts/<int:pk>/ack", AlertViewSet.as_view({"post": "ack"}), name="alert-ack"),
]
