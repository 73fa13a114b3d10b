"""Input and output shapes of the kvmanager API."""
