"""Django admin registrations of the accounts app: users with their lock state, roles and forced
password change (unlock / force a password change); users added or reset here must change the
password at next sign-in."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from accounts import selectors, services
from accounts.models import AccountProfile
from etcdmonitor_site.clientip import client_ip

User = get_user_model()


class AccountProfileInline(admin.StackedInline):
    model = AccountProfile
    can_delete = False
    fields = ("must_change_password", "roles", "kv_scopes")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form.base_fields["roles"].help_text = (
            'JSON: {"<cluster id>": "viewer" | "operator" | "admin", "*": role on every other '
            "cluster (viewer when absent)}. A superuser is admin everywhere."
        )
        formset.form.base_fields["kv_scopes"].help_text = (
            'JSON: {"<cluster id>" | "*": {"read": ["/app/"], "write": ["/app/config/"]}}: the '
            "keys the user sees and writes there (no entry: every key). Write prefixes must lie "
            "within read prefixes. A superuser is never scoped."
        )
        return formset


admin.site.unregister(User)


@admin.register(User)
class AccountUserAdmin(UserAdmin):
    inlines = (AccountProfileInline,)
    list_display = (
        "username",
        "is_active",
        "is_staff",
        "last_login",
        "locked",
        "failed_attempts",
        "must_change_password",
        "roles_summary",
    )
    list_select_related = ("account_profile",)
    actions = ("unlock_accounts", "force_password_change")

    @admin.display(boolean=True, description="locked (some address)")
    def locked(self, user) -> bool:
        return selectors.login_locked_addresses(username=user.get_username()) > 0

    @admin.display(description="failed sign-ins")
    def failed_attempts(self, user) -> int:
        return selectors.login_failures(username=user.get_username())

    @admin.display(boolean=True, description="must change password")
    def must_change_password(self, user) -> bool:
        profile = getattr(user, "account_profile", None)
        return bool(profile and profile.must_change_password)

    @admin.display(description="roles")
    def roles_summary(self, user) -> str:
        roles = selectors.effective_roles(user)
        return ", ".join(f"{cluster}: {role}" for cluster, role in sorted(roles.items()))

    def save_related(self, request, form, formsets, change):
        """A user added here must change the password at first sign-in, as one added through
        /api/users (the inline's unticked box would say otherwise)."""
        super().save_related(request, form, formsets, change)
        if not change:
            profile = services.profile_for(form.instance)
            profile.must_change_password = True
            profile.save(update_fields=["must_change_password"])

    def user_change_password(self, request, id, form_url=""):
        """An admin setting another user's password is a reset: that user must change it at
        next sign-in, and their sessions end (audited as admin_force_password_change)."""
        response = super().user_change_password(request, id, form_url)
        user = self.get_object(request, id)
        changed = request.method == "POST" and response.status_code == 302
        if changed and user is not None and user.pk != request.user.pk:
            services.password_change_force(
                user=user, actor=request.user.get_username(), client_ip=client_ip(request)
            )
        return response

    @admin.action(description="Unlock selected accounts", permissions=["change"])
    def unlock_accounts(self, request, queryset):
        for user in queryset:
            services.account_unlock(
                user=user,
                actor=request.user.get_username(),
                source="admin",
                client_ip=client_ip(request),
            )
        self.message_user(request, f"{queryset.count()} account(s) unlocked", messages.SUCCESS)

    @admin.action(description="Force a password change at next login", permissions=["change"])
    def force_password_change(self, request, queryset):
        for user in queryset:
            services.password_change_force(
                user=user, actor=request.user.get_username(), client_ip=client_ip(request)
            )
        self.message_user(
            request, f"{queryset.count()} user(s) must change their password", messages.SUCCESS
        )
