"""node.toml's [openadr] table: a good one loads (the secret file relative to node.toml), a bad one
is a ConfigError at start that names the field and says what is wrong; `node status` prints it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from negawatt.cli import app
from node.config import ConfigError, load_config

runner = CliRunner()
HEAD = ('owner_keystore = "k.json"\n[[devices]]\nkeystore = "d.json"\nkind = "ev_charger"\ncapacity_w = 7400\n'
        '[openadr]\n')


def write(tmp_path, openadr: str):
    path = tmp_path / "node.toml"
    path.write_text(HEAD + openadr)
    return path


def test_a_good_table_loads_with_its_secret_file(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "vtn.txt").write_text("s3cret\n")
    config = load_config(write(tmp_path, 'url = "https://vtn.example/oadr"\nclient_id = "node-1"\n'
                                         'client_secret_file = "keys/vtn.txt"\nprogram = "flex"\npoll_seconds = 15\n'))
    assert config.openadr.client_secret_file == tmp_path / "keys" / "vtn.txt"
    assert config.openadr.secret() == "s3cret" and config.openadr.poll_seconds == 15
    assert "s3cret" not in repr(load_config(write(tmp_path, 'url = "http://x"\nclient_id = "c"\n'
                                                             'client_secret = "s3cret"\nprogram_id = "p"\n')))


@pytest.mark.parametrize("table, message", [
    ('url = "ftp://vtn"\nclient_id = "c"\nclient_secret = "s"\nprogram = "p"\n', "openadr.url"),
    ('url = "https://vtn"\nclient_id = "c"\nprogram = "p"\n', "exactly one of client_secret and client_secret_file"),
    ('url = "https://vtn"\nclient_id = "c"\nclient_secret = "s"\n', "exactly one of program (its name) and program_id"),
    ('url = "https://vtn"\nclient_id = "c"\nclient_secret = "s"\nprogram = "p"\nprogram_id = "q"\n', "program_id"),
    ('url = "https://vtn"\nclient_id = "c"\nclient_secret = "s"\nprogram = "p"\npoll_seconds = 0\n',
     "openadr.poll_seconds"),
    ('url = "https://vtn"\nclient_id = "c"\nclient_secret = "s"\nprogram = "p"\ncolour = "red"\n', "openadr.colour"),
    ('url = "https://vtn"\nclient_id = "c"\nclient_secret_file = "absent.txt"\nprogram = "p"\n',
     "absent.txt: cannot read it"),
])
def test_a_bad_table_is_a_clear_error(tmp_path, table, message):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, table))
    assert message in str(error.value)


def test_an_empty_secret_file_is_refused_and_the_cli_says_so(tmp_path):
    (tmp_path / "empty.txt").write_text("\n")
    path = write(tmp_path, 'url = "https://vtn"\nclient_id = "c"\nclient_secret_file = "empty.txt"\nprogram = "p"\n')
    result = runner.invoke(app, ["node", "status", "--config", str(path)])
    assert result.exit_code == 2 and "needs one line of 1 to 512 characters" in result.stderr
