"""Input and output shapes of the monitoring API."""
