"""The DRF authentication class of every /api/ route: bearer token, or the dashboard's cookie.

DRF's contract: return None when no credentials are presented (the permission check then answers
401), raise AuthenticationFailed when they are presented and wrong, and name the scheme in
`authenticate_header` so failures are 401, not 403.
"""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, CSRFCheck

from accounts.selectors import SESSION_COOKIE, bearer_token
from accounts.services import (
    PASSWORD_CHANGE_REQUIRED,
    password_change_pending_denied,
    session_authenticate,
)
from etcdmonitor_site.clientip import client_ip


def _csrf_failure_reason(request) -> str | None:
    check = CSRFCheck(lambda _request: None)
    check.process_request(request)  # populates request.META["CSRF_COOKIE"]
    return check.process_view(request, None, (), {})


def _exempt_while_change_pending(request) -> bool:
    """Whether the view's action stays open to a user who must change their password first
    (logout): the view lists such actions in `password_change_pending_actions`."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    return getattr(view, "action", None) in getattr(view, "password_change_pending_actions", ())


class PasswordChangeRequired(exceptions.PermissionDenied):
    """403: the session's user must change their password before anything else."""

    default_detail = PASSWORD_CHANGE_REQUIRED
    body_code = "password_change_required"


def password_change_pending_refuse(*, session, request):
    """Audit the refusal and raise PasswordChangeRequired."""
    password_change_pending_denied(
        username=session.user.get_username(),
        target=f"{request.method} {request.path}",
        client_ip=client_ip(request._request),
    )
    raise PasswordChangeRequired()


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>`; else the HttpOnly `etcdmonitor_session` cookie.

    A cookie is sent by the browser on its own, so an unsafe request authenticated by it must
    also carry the CSRF token (X-CSRFToken header). Header clients need no CSRF token. A user
    who must change their password is refused (403) everywhere but logout: login issues them
    no session, but an admin may force the change while one is live.
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
        if session.must_change_password and not _exempt_while_change_pending(request):
            password_change_pending_refuse(session=session, request=request)
        return session.user, session

    def authenticate_header(self, request) -> str:
        return self.keyword
