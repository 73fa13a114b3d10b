"""DRF viewsets of the monitoring app."""
