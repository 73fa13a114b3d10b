"""The HTML pages of the dashboard: login, change-password and the single-page dashboard.

The pages are thin shells: every piece of data comes from the JSON API at run time, except the
panel registry and the user's layout, which are rendered into the page as JSON data blocks
(`json_script`) so the browser and the server share one source of panel ids and defaults.
"""

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponseNotFound
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from accounts import selectors as account_selectors
from accounts import services as account_services
from etcdmonitor_site.exceptions import json_not_found
from monitoring.panels import dashboard_registry
from monitoring.selectors import panel_config_for

VIEWS = ("monitor", "kv", "ops", "users", "fleet", "alerts")


@require_GET
@never_cache
def login_page(request):
    """The sign-in form; an already signed-in browser goes straight to the dashboard."""
    if account_services.session_for_request(request=request) is not None:
        return redirect("dashboard")
    return render(
        request,
        "login.html",
        {
            "app_version": settings.APP_VERSION,
            "initial_setup_pending": account_services.initial_password_path().exists(),
        },
    )


@require_GET
@never_cache
def change_password_page(request):
    """Change a password by username + current password (the forced first-login step)."""
    return render(
        request,
        "change_password.html",
        {
            "app_version": settings.APP_VERSION,
            "username": request.GET.get("username", "")[:150],
            "forced": request.GET.get("forced") == "1",
            "min_length": settings.MIN_PASSWORD_LENGTH,
        },
    )


@require_GET
@never_cache
@ensure_csrf_cookie
def dashboard_page(request, view: str = "monitor"):
    """Monitor, Fleet, Alerts, KV, Ops and (for admins) Users views in one page; `view` picks
    the one shown first. A user who must change their password is sent to the change form."""
    session = account_services.session_for_request(request=request)
    if session is None:
        return redirect("login")
    if session.must_change_password:  # every API call would be refused: change it first
        query = urlencode({"username": session.user.get_username(), "forced": "1"})
        return redirect(f"{reverse('change-password')}?{query}")
    if view == "ops" and not settings.OPS_ENABLED:
        view = "monitor"
    can_manage_users = account_selectors.users_admin(session.user)
    if view == "users" and not can_manage_users:
        view = "monitor"
    boot = {
        "view": view if view in VIEWS else "monitor",
        "username": session.user.get_username(),
        "app_version": settings.APP_VERSION,
        "ops_enabled": settings.OPS_ENABLED,
        "kv_separator": settings.KV_SEPARATOR,
        "kv_max_value_size": settings.KV_MAX_VALUE_SIZE,
        "can_manage_users": can_manage_users,
        "min_password_length": settings.MIN_PASSWORD_LENGTH,
        # What the dashboard offers (etcdmonitor_site.policy decides anyway): the role map
        # ("*" filled in) gives the role on whichever cluster is on screen; the default
        # cluster's name is what a typed confirmation asks for there.
        "roles": account_selectors.effective_roles(session.user),
        "role": account_selectors.role_for(user=session.user, cluster_id="default"),
        "read_only": settings.READ_ONLY,
        "cluster_name": settings.ETCD_CLUSTER_NAME or "default",
    }
    return render(
        request,
        "dashboard.html",
        {
            "boot": boot,
            "registry": dashboard_registry(),
            "panel_config": panel_config_for(session.user),
            "ops_enabled": settings.OPS_ENABLED,
            "app_version": settings.APP_VERSION,
            "username": boot["username"],
            "can_manage_users": can_manage_users,
        },
    )


def not_found(request, exception=None):
    """handler404: JSON for API clients, a small HTML page for browsers."""
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return HttpResponseNotFound(render_to_string("404.html", {"path": request.path}))
