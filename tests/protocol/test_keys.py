"""protocol.keys: encrypted keystores round-trip; wrong passwords and bad files give clear errors."""

from __future__ import annotations

import os
import stat

import pytest
from eth_account import Account

from protocol.keys import KeyError_, load_key, read_password, write_keystore


def test_keystore_round_trip_and_file_mode(tmp_path):
    account = Account.create()
    path = tmp_path / "k.json"
    assert write_keystore(path, account.key, "s3cret", kdf="pbkdf2") == account.address
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(path, "s3cret") == bytes(account.key)
    assert account.key.hex()[2:] not in path.read_text()


def test_wrong_password_and_bad_files(tmp_path):
    path = tmp_path / "k.json"
    write_keystore(path, Account.create().key, "right", kdf="pbkdf2")
    with pytest.raises(KeyError_, match="wrong password"):
        load_key(path, "wrong")
    with pytest.raises(KeyError_, match="no keystore at"):
        load_key(tmp_path / "absent.json", "x")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(KeyError_, match="is not a keystore"):
        load_key(tmp_path / "bad.json", "x")
    with pytest.raises(KeyError_, match="empty password"):
        write_keystore(tmp_path / "e.json", Account.create().key, "")


def test_password_from_env_then_file(tmp_path, monkeypatch):
    file = tmp_path / "pw"
    file.write_text("from-file\n")
    monkeypatch.delenv("NEGAWATT_TEST_PW", raising=False)
    assert read_password("NEGAWATT_TEST_PW", file) == "from-file"
    monkeypatch.setenv("NEGAWATT_TEST_PW", "from-env")
    assert read_password("NEGAWATT_TEST_PW", file) == "from-env"
    monkeypatch.delenv("NEGAWATT_TEST_PW")
    with pytest.raises(KeyError_, match="set NEGAWATT_TEST_PW"):
        read_password("NEGAWATT_TEST_PW", None)
    with pytest.raises(KeyError_, match="cannot read the password file"):
        read_password(None, tmp_path / "absent")
