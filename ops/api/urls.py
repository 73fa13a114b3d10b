"""HTTP routes of the ops app, mounted under /api/ by the project urls."""

urlpatterns: list = []
