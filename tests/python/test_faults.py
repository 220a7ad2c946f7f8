"""Fault injection on the quantize -> export flow (docs/robustness.md): a kill
at a random point, an input changed or truncated while it is read, and
output paths that cannot be written (a full disk and a read-only directory
are in test_gguf_interop.py). After each fault the output
path holds nothing or a complete file that its manifest describes."""
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import blockquant as bq

CLI = [sys.executable, "-m", "blockquant", "quantize"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    path = str(d / "small-f16.gguf")
    bq.make_demo_model(path, small=True, threads=2)
    return path


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _check_output_dir(d, out, replacing=False):
    """The fault leaves nothing at `out`, or a complete file (inspect reads every tensor
    header, and a manifest, when there is one, has its size and hash). No temp file, except
    when replacing an existing file: a kill between naming the finished file and renaming it
    over the old one (microseconds) leaves that complete file under its temp name."""
    leftovers = [p for p in os.listdir(d) if ".tmp." in p]
    assert not leftovers or replacing, leftovers
    for name in leftovers:
        path = os.path.join(d, name)
        if ".gguf.tmp." in name:
            assert bq.inspect(path)["file_bytes"] == os.path.getsize(path)
        else:
            with open(path) as f:
                text = f.read()
            assert text.rstrip().endswith("}") if ".json" in name else text.strip(), name
    suffix = "+complete temp" if leftovers else ""
    if not os.path.exists(out):
        return "nothing" + suffix
    info = bq.inspect(out)
    assert info["tensors"] and info["file_bytes"] == os.path.getsize(out)
    manifest = out + ".manifest.json"
    if not os.path.exists(manifest):
        return "file" + suffix
    with open(manifest) as f:
        entry = json.load(f)["files"][0]
    assert entry["size"] == os.path.getsize(out)
    assert entry["sha256"] == _sha256(out)
    return "file+manifest" + suffix


def test_sigkill_at_random_points_leaves_nothing_or_a_complete_file(model, tmp_path):
    t0 = time.perf_counter()
    subprocess.run(CLI + [model, str(tmp_path / "timing.gguf"), "--quiet", "--threads", "1"], check=True)
    full = time.perf_counter() - t0
    rng = random.Random(7)
    outcomes = {}
    trials = 60
    for i in range(trials):
        d = tmp_path / f"kill{i}"
        d.mkdir()
        out = str(d / "out.gguf")
        # Every other trial re-quantizes over an existing result, so a kill
        # must also never leave an old manifest describing a new file.
        if i % 2:
            subprocess.run(CLI + [model, out, "--quiet", "--threads", "1", "--policy", "Q8_0"], check=True)
        p = subprocess.Popen(CLI + [model, out, "--quiet", "--threads", "1"], stdout=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 1.1 * full))
        p.send_signal(signal.SIGKILL)
        p.wait()
        outcome = _check_output_dir(str(d), out, replacing=bool(i % 2))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"SIGKILL outcomes over {trials} trials (full run {full:.2f} s): {outcomes}")
    assert sum(outcomes.values()) == trials


def _copy(src, dst):
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data)
    return len(data)


def test_input_rewritten_in_place_while_read_is_an_error(model, tmp_path):
    src = str(tmp_path / "in.gguf")
    size = _copy(model, src)
    out = str(tmp_path / "out.gguf")

    def rewrite_after_first_tensor(p):
        if p["index"] == 0:  # same size, new bytes near the end, a new mtime
            with open(src, "r+b") as f:
                f.seek(size - 4096)
                f.write(bytes(4096))  # zeros: finite f16 values

    with pytest.raises(bq.IoError, match="modified while it was read"):
        bq.quantize_model(src, out, threads=1, progress=rewrite_after_first_tensor)
    assert sorted(os.listdir(tmp_path)) == ["in.gguf"]


def test_an_exception_from_the_progress_callback_stops_the_run(model, tmp_path):
    out = str(tmp_path / "out.gguf")
    seen = []

    def stop_at_third(p):
        seen.append(p["name"])
        if p["index"] == 2:
            raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        bq.quantize_model(model, out, threads=2, progress=stop_at_third)
    assert len(seen) == 3 and os.listdir(tmp_path) == []


def test_input_truncated_while_read_leaves_no_output(model, tmp_path):
    # Reading a mapped page past the new end raises SIGBUS: the process dies,
    # but the output path stays empty because the data went to an unnamed file.
    src = str(tmp_path / "in.gguf")
    size = _copy(model, src)
    out = str(tmp_path / "out.gguf")
    script = (
        "import os, sys, blockquant as bq\n"
        "src, out, size = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
        "def cut(p):\n"
        "    if p['index'] == 0: os.truncate(src, size // 3)\n"
        "bq.quantize_model(src, out, threads=1, progress=cut)\n")
    r = subprocess.run([sys.executable, "-c", script, src, out, str(size)], capture_output=True, text=True)
    assert r.returncode == -signal.SIGBUS or "modified while it was read" in r.stderr, (r.returncode, r.stderr)
    assert sorted(os.listdir(tmp_path)) == ["in.gguf"]


def test_output_paths_that_cannot_be_written(model, tmp_path):
    with pytest.raises(bq.InvalidArgumentError, match="is the input"):
        bq.quantize_model(model, model)
    link = str(tmp_path / "link.gguf")
    os.symlink(model, link)
    with pytest.raises(bq.InvalidArgumentError, match="is the input"):  # the same file by another name
        bq.quantize_model(model, link)
    with pytest.raises(bq.IoError, match="missing-dir"):
        bq.quantize_model(model, str(tmp_path / "missing-dir" / "out.gguf"))
    with pytest.raises(bq.IoError, match="/proc/"):  # a filesystem nobody can create files in
        bq.quantize_model(model, "/proc/blockquant-out.gguf")
    with pytest.raises(bq.IoError):  # a directory where the file should be
        bq.quantize_model(model, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["link.gguf"]
