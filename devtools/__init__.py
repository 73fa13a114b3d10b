"""Developer and test tooling: never imported by the running app (the image leaves it out)."""
