"""HTTP routes of the clusters app (records and KV tabs), mounted under /api/ by the project
urls.

The reference's paths are fixed, so each action is routed explicitly.
"""

from django.urls import path

from clusters.api.views import ClusterViewSet, KvTabViewSet

urlpatterns = [
    path("clusters", ClusterViewSet.as_view({"get": "list", "post": "create"}), name="clusters"),
    path(
        "clusters/<str:cluster_id>",
        ClusterViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="cluster",
    ),
    path("kv/tabs", KvTabViewSet.as_view({"get": "list", "post": "create"}), name="kv-tabs"),
    path("kv/tabs/order", KvTabViewSet.as_view({"put": "order"}), name="kv-tabs-order"),
    # Before kv/tabs/<tab_id>: "order" and "test" are never tab ids.
    path("kv/tabs/test", KvTabViewSet.as_view({"post": "test_connection"}), name="kv-tabs-test"),
    path(
        "kv/tabs/<str:tab_id>",
        KvTabViewSet.as_view({"patch": "partial_update", "delete": "destroy"}),
        name="kv-tab",
    ),
    path("kv/tabs/<str:tab_id>/test", KvTabViewSet.as_view({"post": "test"}), name="kv-tab-test"),
]
