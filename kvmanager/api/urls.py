"""HTTP routes of the kvmanager app, mounted under /api/ by the project urls."""

urlpatterns: list = []
