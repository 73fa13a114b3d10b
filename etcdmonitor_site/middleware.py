"""Response headers every page and API answer carries."""

from django.conf import settings


class SecurityHeadersMiddleware:
    """Adds the Content-Security-Policy the dashboard is written for (no inline scripts)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response
