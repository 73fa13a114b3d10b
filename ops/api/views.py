"""DRF viewsets of the ops app."""
