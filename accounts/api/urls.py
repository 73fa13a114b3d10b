"""HTTP routes of the accounts app, mounted under /api/ by the project urls.

/api/auth/{login,change-password,logout,status} (no trailing slash, as the reference).
"""

from rest_framework.routers import SimpleRouter

from accounts.api.views import AuthViewSet

router = SimpleRouter(trailing_slash=False)
router.register("auth", AuthViewSet, basename="auth")

urlpatterns = router.urls
