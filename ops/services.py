"""Writes and etcd calls of the ops app."""
