"""Django admin registrations of the accounts app."""
