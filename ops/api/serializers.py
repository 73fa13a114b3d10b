"""Input and output shapes of the ops API."""
