"""HTTP routes of the accounts app, mounted under /api/ by the project urls.

/api/auth/{login,change-password,logout,status} (no trailing slash, as the reference);
/api/users and /api/users/{id} (the admin's user management).
"""

from rest_framework.routers import SimpleRouter

from accounts.api.views import AuthViewSet, UserViewSet

router = SimpleRouter(trailing_slash=False)
router.register("auth", AuthViewSet, basename="auth")
router.register("users", UserViewSet, basename="users")

urlpatterns = router.urls
