"""DRF viewsets of the kvmanager app."""
