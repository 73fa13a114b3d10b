"""The initial admin: created when there are no users, password only in a 0600 file."""

import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from accounts.models import AccountProfile
from accounts.services import PASSWORD_ALPHABET, admin_bootstrap, password_generate

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_users():
    get_user_model().objects.all().delete()


def test_bootstrap_creates_admin_and_a_private_password_file(no_users, data_dir):
    data_dir.chmod(0o755)

    path = admin_bootstrap()

    assert path == data_dir / "initial-admin-password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    password = path.read_text()
    assert password.endswith("\n") and len(password.strip()) == 16
    admin = get_user_model().objects.get()
    assert admin.username == "admin" and admin.check_password(password.strip())
    assert password.strip() not in admin.password
    assert AccountProfile.objects.get(user=admin).must_change_password is True


def test_bootstrap_replaces_a_stale_file_and_fixes_its_mode(no_users, data_dir):
    stale = data_dir / "initial-admin-password"
    stale.write_text("old\n")
    stale.chmod(0o644)

    admin_bootstrap()

    assert stat.S_IMODE(stale.stat().st_mode) == 0o600
    assert stale.read_text() != "old\n"


def test_bootstrap_is_a_no_op_when_users_exist(make_user, data_dir):
    make_user()

    assert admin_bootstrap() is None
    assert not (data_dir / "initial-admin-password").exists()


def test_bootstrap_rolls_back_the_user_when_the_file_cannot_be_written(no_users, data_dir):
    (data_dir / "initial-admin-password").mkdir()  # a directory where the file must go

    with pytest.raises(OSError):
        admin_bootstrap()

    assert not get_user_model().objects.exists()


def test_migrate_bootstraps_through_post_migrate(no_users, data_dir):
    call_command("migrate", verbosity=0)

    assert get_user_model().objects.filter(username="admin").exists()
    assert (data_dir / "initial-admin-password").exists()


def test_generated_passwords_use_only_the_unambiguous_alphabet():
    passwords = {password_generate() for _ in range(200)}

    assert len(passwords) == 200
    assert len(PASSWORD_ALPHABET) == 56 and not set("0Oo1lI") & set(PASSWORD_ALPHABET)
    assert set("".join(passwords)) <= set(PASSWORD_ALPHABET)
    assert all(len(p) == 16 for p in passwords)


def test_runmonitor_bootstrap_prints_where_the_password_is_never_the_password(no_users, data_dir):
    from io import StringIO

    from monitoring.management.commands.runmonitor import Command

    command = Command(stdout=StringIO())
    command._bootstrap()

    password = (data_dir / "initial-admin-password").read_text().strip()
    output = command.stdout._out.getvalue()
    assert str(data_dir / "initial-admin-password") in output
    assert password not in output
