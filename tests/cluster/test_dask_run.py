"""`edgegen run --engine dask`: 200 generated photos through the shipped int8 denoiser on a
local dask cluster of 2 worker processes (loopback only), byte for byte what one process writes;
the same with one worker killed (SIGKILL) partway; a cluster at an address; failures listed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from clitools import assert_one_line_error, child_env, edgegen_cmd, run_edgegen
from PIL import Image

from edgegen.evaluation.photos import bundled_paths
from edgegen.runtime.images import read_image

pytest.importorskip("distributed", reason="edgegen[cluster] is part of the dev install")

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "denoise-blind" / "model.int8.onnx"
COUNT = 200


def generate(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` noisy photos: crops of the bundled training photos (scikit-image's), of
    several sizes, with sigma-25 noise, as PNG and JPEG files."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    photos = [read_image(p) for p in bundled_paths("train")[:8]]
    for i in range(count):
        image = photos[i % len(photos)]
        h, w = int(rng.integers(48, 97)), int(rng.integers(64, 129))
        top = int(rng.integers(0, image.shape[0] - h))
        left = int(rng.integers(0, image.shape[1] - w))
        crop = image[top : top + h, left : left + w].astype(np.float32)
        if crop.ndim == 2:
            crop = np.repeat(crop[:, :, None], 3, axis=2)
        noisy = np.clip(crop[:, :, :3] + rng.normal(0, 25, crop[:, :, :3].shape), 0, 255)
        suffix = "jpg" if i % 4 == 3 else "png"
        Image.fromarray(noisy.round().astype(np.uint8)).save(folder / f"photo{i:03d}.{suffix}")
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The generated photos, and what a single-process `edgegen run` writes for them."""
    root = tmp_path_factory.mktemp("cluster")
    inputs = generate(root / "in", COUNT)
    single = root / "single"
    proc = run_edgegen("run", str(MODEL), str(inputs), "-o", str(single), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return inputs, single


def assert_same_outputs(got: Path, want: Path) -> None:
    """Every output byte-identical to the single-process run's, and nothing else there (no
    temporary left by a worker killed mid-write)."""
    names = sorted(p.name for p in want.iterdir())
    assert len(names) == COUNT
    assert sorted(p.name for p in got.iterdir()) == names
    for name in names:
        assert (got / name).read_bytes() == (want / name).read_bytes(), name


def test_two_workers_write_what_one_process_writes(photos, tmp_path):
    inputs, single = photos
    out = tmp_path / "out"
    proc = run_edgegen(
        "run", str(MODEL), str(inputs), "-o", str(out), "--engine", "dask", "--workers", "2",
        "--batch", "2", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # no engine log lines
    assert len(proc.stdout.splitlines()) == COUNT  # one `src -> dst` line per image
    assert_same_outputs(out, single)
    again = run_edgegen(
        "run", str(MODEL), str(inputs), "-o", str(out), "--engine", "dask", "--workers", "2"
    )
    assert again.returncode == 0, again.stderr
    assert f"{COUNT} output(s) already exist" in again.stderr


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of each child process of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append((int(entry.name), cmdline))
    return found


def is_worker(cmdline: str) -> bool:
    return "spawn_main" in cmdline and "resource_tracker" not in cmdline


def test_a_worker_killed_partway_loses_nothing(photos, tmp_path):
    inputs, single = photos
    out = tmp_path / "out"
    proc = subprocess.Popen(
        edgegen_cmd(
            "run", str(MODEL), str(inputs), "-o", str(out), "--engine", "dask", "--workers", "2",
            "--no-progress",
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not out.is_dir() or len(list(out.glob("*.png"))) < 20:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no outputs appeared"
        time.sleep(0.01)
    # The local cluster's workers are the run's spawned children (not its resource tracker).
    workers = [pid for pid, cmd in children(proc.pid) if is_worker(cmd)]
    assert len(workers) == 2, children(proc.pid)
    os.kill(workers[0], signal.SIGKILL)
    # What was finished at the kill: never rewritten (same file, same time) by the jobs rerun.
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*.png")}
    _, stderr = proc.communicate(timeout=300)
    assert len(finished) < COUNT, "the run ended before the kill: nothing was tested"
    for name, stamp in finished.items():
        path = out / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp, name
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "ran again after their worker was lost" in lines[0], stderr
    assert int(lines[0].split()[1]) >= 1, lines[0]
    assert_same_outputs(out, single)


def first(inputs: Path, count: int, folder: Path) -> Path:
    """A copy of the first ``count`` generated photos in ``folder``."""
    folder.mkdir()
    for path in sorted(inputs.iterdir())[:count]:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def test_a_cluster_at_an_address(photos, tmp_path):
    """A scheduler and one worker process started apart from the run, as on a real cluster."""
    from distributed import LocalCluster

    inputs, single = photos
    subset = first(inputs, 12, tmp_path / "in")
    with LocalCluster(
        n_workers=1, threads_per_worker=2, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        proc = run_edgegen(
            "run", str(MODEL), str(subset), "-o", str(tmp_path / "out"), "--engine", "dask",
            "--address", cluster.scheduler_address, "--no-progress",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for path in sorted((tmp_path / "out").iterdir()):
        assert path.read_bytes() == (single / path.name).read_bytes(), path.name
    assert len(list((tmp_path / "out").iterdir())) == 12


def test_a_corrupt_photo_is_listed_and_the_rest_written(photos, tmp_path):
    inputs, _ = photos
    subset = first(inputs, 6, tmp_path / "in")
    (subset / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    proc = run_edgegen(
        "run", str(MODEL), str(subset), "-o", str(tmp_path / "out"), "--engine", "dask",
        "--workers", "1", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "1 of 7 image(s) failed" in proc.stderr and "broken.png" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(list((tmp_path / "out").iterdir())) == 6


def test_bad_engine_options_are_one_line(photos, tmp_path):
    inputs, _ = photos
    out = str(tmp_path / "out")
    proc = run_edgegen("run", str(MODEL), str(inputs), "-o", out, "--workers", "2")
    assert_one_line_error(proc, "--address and --workers are options of --engine dask")
    proc = run_edgegen(
        "run", str(MODEL), str(inputs), "-o", out, "--engine", "dask", "--address",
        "tcp://127.0.0.1:9", "--workers", "2",
    )  # fmt: skip
    assert_one_line_error(proc, "--workers starts a local cluster")
    env = dict(child_env(), DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="1s")
    proc = subprocess.run(
        edgegen_cmd(
            "run", str(MODEL), str(inputs), "-o", out, "--engine", "dask", "--address",
            "tcp://127.0.0.1:9",
        ),
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert_one_line_error(proc, "cannot reach the dask scheduler at tcp://127.0.0.1:9")
    assert not Path(out).exists() or not list(Path(out).iterdir())


def test_a_file_job_handed_to_the_engine_directly(photos, tmp_path):
    """The Python entry point: a FileJob given to dask's own map, the model read from a path
    every worker shares and checked against its sha256 there."""
    from distributed import Client, LocalCluster

    from edgegen.cluster import FileJob, GeneratorOptions, ModelFile

    inputs, single = photos
    names = sorted(p.name for p in inputs.iterdir())[:8]
    out = tmp_path / "out"
    out.mkdir()
    groups = [[(str(inputs / n), str(out / (Path(n).stem + ".png")))] for n in names]
    job = FileJob(ModelFile.shared(MODEL), GeneratorOptions(threads=1))
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        results = client.gather(client.map(job, groups))
    assert all(r.failures == [] and r.fatal is None and len(r.written) == 1 for r in results)
    for name in names:
        png = Path(name).stem + ".png"
        assert (out / png).read_bytes() == (single / png).read_bytes()
    changed = tmp_path / "model.int8.onnx"
    changed.write_bytes(MODEL.read_bytes())
    stale = FileJob(ModelFile.shared(changed), GeneratorOptions(threads=1), overwrite=True)
    changed.write_bytes(MODEL.read_bytes() + b"\0")  # the copy a worker reads is not the client's
    result = stale(groups[0])
    assert result.fatal is not None and "the copies differ" in result.fatal


def test_a_job_that_raises_is_retried_then_its_images_are_listed(tmp_path):
    """dask's retries, then the end-of-run list: a job raising something other than a bad
    image (a flaky disk) runs 1 + retries times, and each of its images is named."""
    from distributed import Client, LocalCluster

    from edgegen.cluster.dask_engine import run_groups

    attempts = tmp_path / "attempts.txt"

    def flaky(group):  # stands in for FileJob: any callable of a group runs
        with attempts.open("a") as fh:
            fh.write("x\n")
        raise OSError(5, "Input/output error")

    groups = [[(str(tmp_path / "a.png"), str(tmp_path / "out" / "a.png"))]]
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        run = run_groups(client, flaky, groups, retries=2)  # type: ignore[arg-type]
    assert len(attempts.read_text().splitlines()) == 3
    assert run.failures == [f"image {tmp_path / 'a.png'}: OSError: [Errno 5] Input/output error"]
    assert run.written == 0 and run.rerun == 0
