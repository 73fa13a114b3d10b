"""Django admin registrations of the ops app."""
