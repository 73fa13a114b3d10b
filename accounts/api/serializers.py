"""Input and output shapes of the accounts API."""

from rest_framework import serializers


class LoginInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class ChangePasswordInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    old_password = serializers.CharField(max_length=4096, trim_whitespace=False)
    new_password = serializers.CharField(max_length=4096, trim_whitespace=False)


class LoginOutputSerializer(serializers.Serializer):
    username = serializers.CharField()
    expires_at = serializers.IntegerField(required=False)
    session_token = serializers.CharField(required=False)
    must_change_password = serializers.BooleanField()
    authenticated = serializers.BooleanField()


class AuthStatusOutputSerializer(serializers.Serializer):
    auth_required = serializers.BooleanField()
    authenticated = serializers.BooleanField()
    initial_setup_pending = serializers.BooleanField()
    app_version = serializers.CharField()
    ops_enabled = serializers.BooleanField()
    etcd_auth_required = serializers.BooleanField()
    username = serializers.CharField(required=False)
    expires_at = serializers.IntegerField(required=False)
