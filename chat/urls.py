from django.urls import path

from . import attachment_views, views

app_name = "chat"
urlpatterns = [
    path("", views.chat_page, name="index"),
    path("healthz", views.healthz, name="healthz"),
    path("widget/<slug:key>/", views.widget_frame, name="widget-frame"),
    path("help/", views.help_index, name="help"),
    path("help/<slug:slug>/", views.help_article, name="help-article"),
    # Attachments (docs/attachments.md): the upload with the token, the download.
    path("api/conversations/attachments/", attachment_views.upload, name="attachment-upload"),
    path(
        "api/conversations/attachments/<uuid:key>/",
        attachment_views.download,
        name="attachment",
    ),
]
