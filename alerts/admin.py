"""Django admin of the alerts app: alert history and silences to look at, rules to edit."""

from django.contrib import admin

from alerts.models import Alert, AlertRule, ConsistencyCheck, Silence


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("id", "enabled", "for_seconds", "updated_at", "updated_by")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("rule", "cluster_id", "member_id", "severity", "state", "pending_at", "ends_at")
    list_filter = ("state", "severity", "rule", "cluster_id")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ("id", "rule", "cluster_id", "member_id", "severity", "starts_at", "ends_at")


@admin.register(ConsistencyCheck)
class ConsistencyCheckAdmin(admin.ModelAdmin):
    list_display = ("cluster_id", "checked_at", "revision", "outcome")
    list_filter = ("outcome", "cluster_id")
