"""HTTP routes of the monitoring app, mounted under /api/ by the project urls."""

urlpatterns: list = []
