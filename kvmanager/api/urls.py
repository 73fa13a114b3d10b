"""HTTP routes of the kvmanager app, mounted under /api/ by the project urls.

The reference's paths are fixed, so each action is routed explicitly (reads also answer GET on
`connect`, as the reference does).
"""

from django.urls import path

from kvmanager.api.views import KvV2ViewSet, KvV3ViewSet
from kvmanager.api.watch_views import KvWatchViewSet


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
        "history": {"get": "history"},
        "deleted": {"get": "deleted"},
        "revert": {"post": "revert"},
        "restore": {"post": "restore"},
    }
    names = [*list(actions)[:8], *extra]
    return [
        path(f"kv/{version}/{name}", viewset.as_view(actions[name]), name=f"kv-{version}-{name}")
        for name in names
    ]


urlpatterns = [
    *_routes(
        "v3",
        KvV3ViewSet,
        extra=("search", "count", "history", "deleted", "revert", "restore"),
    ),
    *_routes("v2", KvV2ViewSet, extra=("count",)),
    path("kv/v3/watch", KvWatchViewSet.as_view({"get": "watch"}), name="kv-v3-watch"),
]
