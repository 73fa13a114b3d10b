"""DRF viewsets of the accounts app."""
