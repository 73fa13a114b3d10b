"""Writes and etcd calls of the kvmanager app."""
