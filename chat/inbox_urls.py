from django.urls import path

from . import inbox_views as views

app_name = "staff"
urlpatterns = [
    path("", views.inbox_page, name="inbox"),
    path("presence/", views.presence, name="presence"),
    path("c/<uuid:key>/", views.conversation_page, name="conversation"),
    path("c/<uuid:key>/takeover/", views.take_over, name="takeover"),
    path("c/<uuid:key>/reply/", views.reply, name="reply"),
    path("c/<uuid:key>/handback/", views.hand_back, name="handback"),
    path("c/<uuid:key>/resolve/", views.resolve, name="resolve"),
    path("c/<uuid:key>/assign/", views.assign, name="assign"),
    path("c/<uuid:key>/notes/", views.note_add, name="notes"),
    path("c/<uuid:key>/approvals/<uuid:approval>/", views.approval_decide, name="approval"),
]
