"""Django admin registrations of the accounts app: users with their lock state (unlock / force a
password change) and the audit log, which is strictly read-only."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import StreamingHttpResponse
from django.utils import timezone

from accounts import selectors, services
from accounts.models import AccountProfile, AuditLog

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
                client_ip=selectors.client_ip(request),
            )
        self.message_user(request, f"{queryset.count()} account(s) unlocked", messages.SUCCESS)

    @admin.action(description="Force a password change at next login", permissions=["change"])
    def force_password_change(self, request, queryset):
        for user in queryset:
            services.password_change_force(
                user=user, actor=request.user.get_username(), client_ip=selectors.client_ip(request)
            )
        self.message_user(
            request, f"{queryset.count()} user(s) must change their password", messages.SUCCESS
        )


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """The audit trail: viewable, filterable, exportable; never added to, edited or deleted."""

    list_display = (
        "timestamp",
        "username",
        "operation",
        "target",
        "success",
        "duration_ms",
        "client_ip",
    )
    list_filter = ("operation", "username", "success", ("timestamp", admin.DateFieldListFilter))
    search_fields = ("target",)
    date_hierarchy = "timestamp"
    actions = ("export_csv",)
    list_per_page = 100

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    @admin.action(description="Export selected entries as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        response = StreamingHttpResponse(
            selectors.audit_csv_lines(queryset.order_by("timestamp", "id").iterator()),
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
        return response
