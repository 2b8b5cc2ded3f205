"""`negawatt ROLE ...` loads that role's commands only (negawatt.entry), so an install with just that
role's extra runs it: no other role's package, no numpy outside the oracle, and no Ape or pytest."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from negawatt.entry import missing_extra_message

ROLES = ("node", "oracle", "api", "buyer")


@pytest.mark.parametrize("role", ROLES)
def test_a_role_command_loads_only_that_role(role):
    code = (f"import sys; sys.argv = ['negawatt', '{role}', '--help']\n"
            "from negawatt.entry import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "import json; print('LOADED', json.dumps(sorted({m.partition('.')[0] for m in sys.modules} & "
            "{'node', 'oracle', 'api', 'buyer', 'numpy', 'ape', 'pytest', 'matplotlib'})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout.rsplit("LOADED", 1)[1])
    assert loaded == (["numpy", "oracle"] if role == "oracle" else [role]), loaded
    assert "Commands" in result.stdout


def test_a_missing_extra_is_named_in_one_line():
    message = missing_extra_message("oracle", "numpy")
    assert "\n" not in message and "'numpy'" in message and "pip install 'negawatt[oracle]'" in message
    assert "pip install 'negawatt[dev]'" in missing_extra_message("merkle", "ape")
