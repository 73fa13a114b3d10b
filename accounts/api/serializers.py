"""Input and output shapes of the accounts API."""
