from django.urls import path

from . import views

app_name = "chat"
urlpatterns = [
    path("", views.chat_page, name="index"),
    path("healthz", views.healthz, name="healthz"),
    path("widget/<slug:key>/", views.widget_frame, name="widget-frame"),
    path("help/", views.help_index, name="help"),
    path("help/<slug:slug>/", views.help_article, name="help-article"),
]
