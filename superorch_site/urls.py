from django.contrib import admin
from django.urls import include, path, re_path

from chat import privacy_api, staff_api
from orchestrator.monitoring_views import metrics_view

admin.site.site_header = "Super Orchestrator"
admin.site.site_title = "Super Orchestrator admin"
admin.site.index_title = "Agents, conversations and runs"

privacy_api.mount(staff_api.api)  # /api/staff/privacy/ (docs/privacy.md)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("staff/", include("chat.inbox_urls")),
    path("api/staff/", staff_api.urls()),
    re_path(r"^api/staff/(?P<rest>.*)$", staff_api.not_found),  # JSON, not the HTML 404
    path("metrics", metrics_view, name="metrics"),
    path("", include("chat.urls")),
]
