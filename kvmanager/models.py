"""Models of the kvmanager app."""
