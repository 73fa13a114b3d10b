"""OpenAPI description of the bearer authentication (drf-spectacular finds it once imported)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "session_token from POST /api/auth/login (or the etcdmonitor_session "
            "cookie, with X-CSRFToken on unsafe methods)",
        }
