"""Response headers every page and API answer carries."""

from django.conf import settings
from django.utils.cache import add_never_cache_headers


class SecurityHeadersMiddleware:
    """Adds the Content-Security-Policy the dashboard is written for (no inline scripts), and
    keeps every /api/ answer out of browser and proxy caches: the login answer carries the
    token, KV reads carry values, the audit export carries the audit log (errors included, so a
    cached 200 can never be replayed in place of a later 401)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        if request.path_info.startswith("/api/"):
            add_never_cache_headers(response)
        return response
