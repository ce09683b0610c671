"""A base for admin pages of records nobody edits by hand (approvals, erasures, the audit
log): staff read them; nobody adds or changes one, and `deletable = False` keeps them
(an append-only log)."""

from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    deletable = True

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.deletable and super().has_delete_permission(request, obj)
