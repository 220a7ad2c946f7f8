import os
import subprocess
import sys


def test_walkthrough_runs(tmp_path):
    script = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "walkthrough.py")
    r = subprocess.run([sys.executable, script, str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "walkthrough done" in r.stdout
