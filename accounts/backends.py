"""Django-admin login goes through the same lockout and forced-change rules as the API."""

from django.contrib.auth.backends import ModelBackend

from accounts import services
from audit.services import audit_record
from etcdmonitor_site.clientip import client_ip
from etcdmonitor_site.errors import DomainError


class LockoutModelBackend(ModelBackend):
    """ModelBackend whose password check is `services.credentials_check` (lockout, constant-time
    unknown users, audit) and which refuses users who must change their password first."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        address = client_ip(request) if request is not None else None
        try:
            user = services.credentials_check(
                username=username,
                password=password,
                operation="admin_login",
                wrong=services.WRONG_CREDENTIALS,
                client_ip=address,
            )
        except DomainError:  # refused (wrong, locked, throttled, busy): audited already
            return None
        if services.profile_for(user).must_change_password or not self.user_can_authenticate(user):
            return None
        audit_record(
            operation="admin_login",
            username=username,
            target=address or "",
            result="ok",
            client_ip=address,
        )
        return user
