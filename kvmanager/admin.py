"""Django admin registrations of the kvmanager app."""
