"""The page where a user chooses what they hear about: /notifications/settings/.

It extends the admin's look (admin/base_site.html) but is for every user, staff or not, so it
has its own sign-in page drawn with the admin's login template: the admin's own login accepts
staff accounts only. A webhook secret made on saving is shown once, on the page the save
redirects to (kept in the server-side session until then, never in a cookie or a URL).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from .forms import SettingsForm

LOGIN_URL = reverse_lazy("notifications:login")
NEW_SECRET_SESSION_KEY = "notifications_new_webhook_secret"


@never_cache
@login_required(login_url=LOGIN_URL)
@require_http_methods(["GET", "POST"])
def settings_page(request):
    new_secret = ""
    if request.method == "POST":
        form = SettingsForm(request.POST, user=request.user)
        if form.is_valid():
            result = form.save()
            if result["new_secret"]:
                request.session[NEW_SECRET_SESSION_KEY] = result["new_secret"]
                messages.success(request, "Your notification settings are saved. Your webhook has a new signing "
                                          "secret: copy it now, it is shown only this once.")
            else:
                messages.success(request, "Your notification settings are saved.")
            return redirect("notifications:settings")
    else:
        form = SettingsForm(user=request.user)
        new_secret = request.session.pop(NEW_SECRET_SESSION_KEY, "")
    context = {**admin.site.each_context(request), "title": "Notification settings", "form": form,
               "new_secret": new_secret, "is_nav_sidebar_enabled": False}
    return render(request, "notifications/settings.html", context)


class LoginView(auth_views.LoginView):
    """The admin's login page for any active user; back to the settings page (or `next`)."""

    template_name = "admin/login.html"
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        return reverse("notifications:settings")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(admin.site.each_context(self.request))
        context.update(title="Log in", app_path=self.request.get_full_path(),
                       username=self.request.user.get_username())
        return context


class LogoutView(auth_views.LogoutView):
    next_page = LOGIN_URL
