"""Routes of the notifications app, included at the root by config/urls.py: the API under
/api/notifications/ (api.py) and the settings page under /notifications/ (views.py)."""

from django.urls import path

from . import api, views

app_name = "notifications"

urlpatterns = [
    path("api/notifications/", api.NotificationListView.as_view(), name="api-list"),
    path("api/notifications/<int:pk>/", api.NotificationDetailView.as_view(), name="api-detail"),
    path("api/notifications/kinds/", api.NotificationKindsView.as_view(), name="api-kinds"),
    path("api/notifications/settings/", api.NotificationSettingsView.as_view(), name="api-settings"),
    path("api/notifications/channels/webhook/rotate-secret/", api.RotateWebhookSecretView.as_view(),
         name="api-rotate-secret"),
    path("api/notifications/channels/<str:kind>/", api.NotificationChannelView.as_view(), name="api-channel"),
    path("notifications/settings/", views.settings_page, name="settings"),
    path("notifications/login/", views.LoginView.as_view(), name="login"),
    path("notifications/logout/", views.LogoutView.as_view(), name="logout"),
]
