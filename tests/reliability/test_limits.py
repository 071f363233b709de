"""Limits a single catalogue row cannot show: Ctrl-C and --timeout during a long inference, a
memory limit, two exports into one folder at once, a file the user may not read, and the whole
privilege-sensitive part of this suite run again as an unprivileged user.

The long inference is a plain 48-layer convolution stack on a 2048x2048 gradient (several
seconds on 2 cores), so that an interruption lands while onnxruntime is inside ``run``.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from badinputs import DENOISE, graph_with_spec, photo_crop
from clitools import assert_one_line_error, child_env, edgegen_cmd, run_edgegen
from PIL import Image
from tinymodels import exported, tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def conv_stack(path: Path, layers: int, width: int) -> Path:
    """``layers`` 3x3 convolutions of ``width`` channels, random weights, with a denoise spec."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, weights = [], []
    previous, c_in = "input", 3
    for i in range(layers):
        c_out = 3 if i == layers - 1 else width
        w = (rng.standard_normal((c_out, c_in, 3, 3)) * 0.05).astype(np.float32)
        weights.append(numpy_helper.from_array(w, f"w{i}"))
        out = "output" if i == layers - 1 else f"a{i}"
        nodes.append(helper.make_node("Conv", [previous, f"w{i}"], [out], pads=[1, 1, 1, 1]))
        previous, c_in = out, c_out
    shape = ["N", 3, "H", "W"]
    return graph_with_spec(path, DENOISE.to_json(), shape, shape, nodes, weights)


def gradient(path: Path, side: int) -> Path:
    """A smooth side x side RGB image: a small PNG that is a large inference."""
    yy, xx = np.mgrid[0:side, 0:side]
    rgb = np.stack([xx * 255 // side, yy * 255 // side, (xx + yy) * 255 // (2 * side)], -1)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model and an image that take seconds, and a small photo that takes milliseconds."""
    root = tmp_path_factory.mktemp("slow")
    model = conv_stack(root / "slow.onnx", layers=48, width=16)
    photos = root / "photos"
    photos.mkdir()
    Image.fromarray(photo_crop()).save(photos / "a_small.png")
    gradient(photos / "b_large.png", 2048)
    return model, photos


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp")) if folder.is_dir() else []


def default_sigint() -> None:
    """Ctrl-C's default action in the child: a test run started in the background (``pytest
    &``) ignores SIGINT, children inherit that, and Python then installs no handler for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_the_running_inference_with_exit_130(slow: tuple[Path, Path], tmp_path: Path):
    model, photos = slow
    out = tmp_path / "out"
    proc = subprocess.Popen(
        edgegen_cmd("run", str(model), str(photos), "-o", str(out), "--tile", "0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
        preexec_fn=default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "a_small.png").exists():  # the small one is done: the large one is running
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first output never appeared"
        time.sleep(0.01)
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    stopped_after = time.monotonic() - sent
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip() == "edgegen: interrupted", stderr
    # cancelled inside onnxruntime's run, not after it: the large image takes several seconds
    assert stopped_after < 3.0, stopped_after
    assert sorted(p.name for p in out.iterdir()) == ["a_small.png"]  # nothing half-written
    assert temporaries(out) == []
    with Image.open(out / "a_small.png") as im:
        assert im.size == (32, 24)


def test_timeout_stops_one_image_and_lists_it(slow: tuple[Path, Path], tmp_path: Path):
    model, photos = slow
    out = tmp_path / "out"
    proc = run_edgegen(
        "run", str(model), str(photos), "-o", str(out), "--tile", "0", "--timeout", "1"
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "b_large.png" in proc.stderr and "stopped after the timeout of 1 s" in proc.stderr
    assert "1 of 2 image(s) failed" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a_small.png"]
    alone = run_edgegen(
        "run", str(model), str(photos / "b_large.png"), "-o", str(tmp_path / "o2"), "--tile",
        "0", "--timeout", "1",
    )  # fmt: skip
    assert_one_line_error(alone, "b_large.png", "stopped after the timeout")


def test_an_image_too_large_for_the_memory_limit_is_one_line(tmp_path: Path) -> None:
    """4096x4096 untiled through 64 channels needs a 4 GiB activation; the process may have 3."""
    model = conv_stack(tmp_path / "wide.onnx", layers=2, width=64)
    image = gradient(tmp_path / "big.png", 4096)

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    proc = subprocess.run(
        edgegen_cmd("run", str(model), str(image), "-o", str(tmp_path / "out"), "--tile", "0"),
        capture_output=True, text=True, env=child_env(), preexec_fn=limit_memory, timeout=300,
    )  # fmt: skip
    assert_one_line_error(proc, "big.png", "out of memory", "use a smaller --tile")
    assert not (tmp_path / "out" / "big.png").exists()
    tiled = subprocess.run(  # the advice works: tiled, the same image fits
        edgegen_cmd("run", str(model), str(image), "-o", str(tmp_path / "out"), "--tile", "512"),
        capture_output=True, text=True, env=child_env(), preexec_fn=limit_memory, timeout=300,
    )  # fmt: skip
    assert tiled.returncode == 0, tiled.stderr
    assert (tmp_path / "out" / "big.png").is_file()


def test_a_second_export_into_a_busy_folder_is_refused_and_the_first_completes(
    tmp_path: Path,
) -> None:
    ckpt = tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "out"
    args = (
        "export", str(ckpt), "--out", str(out), "--precision", "fp32,int8", "--calib-count", "4",
        "--no-progress",
    )  # fmt: skip
    first = subprocess.Popen(
        edgegen_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(),
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not temporaries(out):  # the first export is staging its files
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first export never staged a file"
        time.sleep(0.005)
    first.send_signal(signal.SIGSTOP)  # paused mid-export, its lock held: as if it were slow
    try:
        second = run_edgegen(*args, timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    assert_one_line_error(second, "export folder", "in use by another edgegen process")
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    verify = run_edgegen("verify", str(out / "model.int8.onnx"))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert temporaries(out) == []


def as_nobody() -> list[str]:
    """The command prefix that runs a child as the unprivileged user ``nobody``."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot drop root")
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def unprivileged_env(home: Path) -> dict[str, str]:
    env = child_env()
    env.update(HOME=str(home), HYPOTHESIS_STORAGE_DIRECTORY=str(home / "hypothesis"))
    return env


def shared_tmp(tmp_path: Path) -> Path:
    """A folder nobody can write into, under pytest's root-only tmp folder."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"edgegen-nobody-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    return folder


def test_permission_denied_is_named_not_called_corrupt(tmp_path: Path) -> None:
    folder = shared_tmp(tmp_path)
    try:
        model_dir = folder / "model"
        shutil.copytree(exported(("fp32",)), model_dir)
        secret = folder / "secret.png"
        Image.fromarray(photo_crop()).save(secret)
        secret.chmod(0o000)
        argv = ["run", str(model_dir / "model.fp32.onnx"), str(secret), "-o", str(folder / "o")]
        prefix = as_nobody() if os.geteuid() == 0 else []
        for path in folder.rglob("*"):
            if path != secret:
                path.chmod(0o777 if path.is_dir() else 0o666)
        proc = subprocess.run(
            [*prefix, *edgegen_cmd(*argv)], capture_output=True, text=True, timeout=120,
            env=unprivileged_env(folder), cwd=folder,
        )  # fmt: skip
        assert_one_line_error(proc, "secret.png: permission denied")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# What behaves differently without root: permissions, device nodes (mknod is root's), FIFOs,
# locks and temporaries in folders of other owners. The load and property-based tests and the
# fuzz pass exercise no privilege-dependent path and are not run twice; of the bad-input
# catalogue, only its `privileged` rows (badinputs.PRIVILEGE_SENSITIVE) are.
UNPRIVILEGED_SUITE = (
    "test_bad_inputs.py", "test_crash_safety.py", "test_security.py", "test_limits.py",
)  # fmt: skip


def runs_as_nobody(python: str, env: dict[str, str]) -> bool:
    """Can ``nobody`` start ``python`` from a shell (as the suite's own children are started)
    and import what the suite needs?"""
    probe = 'exec "$0" -c "import edgegen.export, numpy, onnxruntime, pytest, torch"'
    proc = subprocess.run(
        [*as_nobody(), "/bin/sh", "-c", probe, python], capture_output=True, env=env, timeout=120
    )
    return proc.returncode == 0


def nobody_python(folder: Path, env: dict[str, str]) -> str:
    """An interpreter ``nobody`` can run, with this environment's packages. The dev venv's own
    may point into root's home (pyenv under /root, mode 0700), where nobody cannot go; then a
    venv of the system's Python of the same version is made, which reads this venv's
    site-packages (same CPython ABI)."""
    if runs_as_nobody(sys.executable, env):
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = Path(f"/usr/bin/python{version}")
    if not system.is_file():
        pytest.skip(f"nobody cannot run {sys.executable}, and there is no {system} to use instead")
    venv = folder / "venv"
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    ours = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
    (site / "edgegen-dev.pth").write_text(f"import site; site.addsitedir({str(ours)!r})\n")
    for path in [venv, *venv.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755)
    python = str(venv / "bin" / "python")
    if not runs_as_nobody(python, env):
        pytest.skip(f"nobody cannot run {sys.executable} nor {system} with this venv's packages")
    return python


@pytest.mark.skipif(os.geteuid() != 0, reason="not root: this whole run is the unprivileged one")
@pytest.mark.skipif(os.environ.get("EDGEGEN_UNPRIVILEGED") == "1", reason="already the nested run")
def test_the_reliability_suite_passes_as_an_unprivileged_user(tmp_path: Path) -> None:
    folder = shared_tmp(tmp_path)
    try:
        env = unprivileged_env(folder)
        env.update(TMPDIR=str(folder), EDGEGEN_UNPRIVILEGED="1")
        python = nobody_python(folder, env)
        tests = [str(ROOT / "tests" / "reliability" / name) for name in UNPRIVILEGED_SUITE]
        proc = subprocess.run(
            [*as_nobody(), python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
             "-m", "privileged or not catalogue", *tests],
            capture_output=True, text=True, timeout=1200, env=env, cwd=ROOT,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert " passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout[-2000:]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
