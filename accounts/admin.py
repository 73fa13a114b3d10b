"""Django admin registrations of the accounts app: users with their lock state (unlock / force a
password change)."""

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
    fields = ("must_change_password",)


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
