"""The DRF authentication class of every /api/ route: bearer token, or the dashboard's cookie.

DRF's contract: return None when no credentials are presented (the permission check then answers
401), raise AuthenticationFailed when they are presented and wrong, and name the scheme in
`authenticate_header` so failures are 401, not 403.
"""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, CSRFCheck

from accounts.selectors import SESSION_COOKIE, bearer_token
from accounts.services import session_authenticate


def _csrf_failure_reason(request) -> str | None:
    check = CSRFCheck(lambda _request: None)
    check.process_request(request)  # populates request.META["CSRF_COOKIE"]
    return check.process_view(request, None, (), {})


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>`; else the HttpOnly `etcdmonitor_session` cookie.

    A cookie is sent by the browser on its own, so an unsafe request authenticated by it must
    also carry the CSRF token (X-CSRFToken header). Header clients need no CSRF token.
    """

    keyword = "Bearer"

    def authenticate(self, request):
        token = bearer_token(request)
        from_cookie = False
        if token is None:
            token = request.COOKIES.get(SESSION_COOKIE)
            from_cookie = True
            if not token:
                return None
        session = session_authenticate(token=token)
        if session is None:
            raise exceptions.AuthenticationFailed("not authenticated")
        if from_cookie:
            reason = _csrf_failure_reason(request._request)
            if reason:
                raise exceptions.PermissionDenied(f"CSRF failed: {reason}")
        return session.user, session

    def authenticate_header(self, request) -> str:
        return self.keyword
