"""HTTP routes of the accounts app, mounted under /api/ by the project urls."""

urlpatterns: list = []
