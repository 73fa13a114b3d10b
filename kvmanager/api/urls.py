"""HTTP routes of the kvmanager app, mounted under /api/ by the project urls.

The reference's paths are fixed, so each action is routed explicitly (reads also answer GET on
`connect`, as the reference does).
"""

from django.urls import path

from kvmanager.api.tab_views import KvTabViewSet
from kvmanager.api.views import KvV2ViewSet, KvV3ViewSet


def _routes(version: str, viewset, *, extra: tuple[str, ...] = ()) -> list:
    actions = {
        "connect": {"post": "connect", "get": "connect"},
        "separator": {"get": "separator"},
        "keys": {"get": "keys"},
        "getpath": {"get": "getpath"},
        "get": {"get": "get_key"},
        "put": {"put": "put_key"},
        "delete": {"post": "delete_key"},
        "list": {"get": "list"},
        "search": {"get": "search"},
        "count": {"get": "count"},
    }
    names = [*list(actions)[:8], *extra]
    return [
        path(f"kv/{version}/{name}", viewset.as_view(actions[name]), name=f"kv-{version}-{name}")
        for name in names
    ]


urlpatterns = [
    *_routes("v3", KvV3ViewSet, extra=("search", "count")),
    *_routes("v2", KvV2ViewSet, extra=("count",)),
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
