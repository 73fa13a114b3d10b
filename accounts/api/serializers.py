"""Input and output shapes of the accounts API."""

from rest_framework import serializers

from etcdmonitor_site.api import StrictBooleanField, StrictStringField


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


MAX_PASSWORD_CHARS = 4096  # as the login body: a longer one is only work for the hasher


def _password_bounded(value: str) -> str:
    if len(value) > MAX_PASSWORD_CHARS:
        raise serializers.ValidationError(f"at most {MAX_PASSWORD_CHARS} characters")
    return value


class UserCreateInputSerializer(serializers.Serializer):
    username = StrictStringField()
    password = StrictStringField(validators=[_password_bounded])
    roles = serializers.DictField(required=False)
    kv_scopes = serializers.DictField(required=False)


class UserPatchInputSerializer(serializers.Serializer):
    roles = serializers.DictField(required=False)
    kv_scopes = serializers.DictField(required=False)
    is_active = StrictBooleanField(required=False)
    password = StrictStringField(required=False, validators=[_password_bounded])
    unlock = StrictBooleanField(required=False)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError(
                "give roles, kv_scopes, is_active, password or unlock"
            )
        return attrs


class UserOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    is_active = serializers.BooleanField()
    roles = serializers.DictField(child=serializers.CharField())
    kv_scopes = serializers.DictField()
    must_change_password = serializers.BooleanField()
    locked = serializers.BooleanField()


class UserEnvelopeSerializer(serializers.Serializer):
    user = UserOutputSerializer()


class UserListSerializer(serializers.Serializer):
    users = UserOutputSerializer(many=True)
