"""pipeline.runtimes: the offline profile's runtimes imported as a worker needs them."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "import os; from pipeline.runtimes import import_faster_whisper; import_faster_whisper(); " \
       "print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.subprocess
@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_without_spinning_unless_the_environment_says(given, expected):
    """CTranslate2's libgomp reads OMP_WAIT_POLICY when it loads: passive unless the operator set it
    (spinning threads in a worker took the time slices its work needed on a busy host)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == expected
