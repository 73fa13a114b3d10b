"""Django admin registrations of the monitoring app."""
