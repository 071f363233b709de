"""Verify edgegen's models on ARM64, in an emulated Debian arm64 userland (`make check-arm64`).

    python scripts/check_arm64.py [--models EXPORT_DIR,...] [--json FILE] [--allow-skip]

Needs root on Linux with binfmt_misc (to register qemu-user-static's aarch64 interpreter and
chroot into the root); Debian's `qemu-user-static` and `debootstrap` are installed with apt
when missing. Built once and cached in $EDGEGEN_ARM64_CACHE (default /var/cache/edgegen-arm64):
a Debian bookworm arm64 root (debootstrap) with a venv holding the aarch64 wheels of edgegen's
runtime dependencies at the pinned versions (`pip download --platform manylinux_2_28_aarch64`).
Each run installs the edgegen wheel built from this checkout (`edgegen[cpu]`: numpy,
onnxruntime, Pillow, click; no torch), then, inside the root:

- `edgegen verify` on every shipped model and on fresh exports of a small model made here (fp32,
  fp16, and int8 both with the x86 layout, whose convolutions are padded to the channel counts
  x86's int8 kernel wants, and with `--no-channel-pad`, the plain layout for ARM), and the same
  `edgegen verify` on this machine;
- `edgegen run` on a noisy photo with each model, compared pixel by pixel with the same command
  here.

The root has /proc mounted for the run and never /sys (onnxruntime's cpuinfo crashes under
emulation when it can read /sys). Emulation is for correctness, not speed: timings there mean
nothing.

Exit codes: 0 every model verified on ARM64; 1 a model failed verification there (each printed)
or a run failed; 2 bad usage; 3 this machine cannot run the check (not root, no binfmt_misc, no
network for the first build): with --allow-skip that prints why and exits 0, as CI runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgegen.runners.arm64 import VENV, arm64_cache

ROOT = Path(__file__).resolve().parents[1]
CACHE = arm64_cache()  # the arm64 runner enters the same root
SUITE = "bookworm"  # Python 3.11, as the wheels below are built for
MIRROR = "http://deb.debian.org/debian"
PLATFORM = "manylinux_2_28_aarch64"
RUNTIME_PACKAGES = ("numpy", "onnxruntime", "pillow", "click")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")


class CannotRun(Exception):
    """This machine cannot run the check (exit 3, or 0 with --allow-skip)."""


def say(line: str) -> None:
    print(f"check-arm64: {line}", flush=True)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, capture_output=True, **kwargs)


def pinned(name: str) -> str:
    """``name==version`` from requirements/constraints.txt."""
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(f"{name.lower()}=="):
            return line.strip()
    raise SystemExit(f"check-arm64: {name} is not pinned in requirements/constraints.txt")


# -- the machine ---------------------------------------------------------------------------


def ensure_tools() -> None:
    if platform.system() != "Linux":
        raise CannotRun("needs Linux (binfmt_misc and chroot)")
    if os.geteuid() != 0:
        raise CannotRun("needs root (to register the aarch64 interpreter and chroot)")
    missing = [t for t in ("qemu-aarch64-static", "debootstrap") if shutil.which(t) is None]
    if missing:
        if shutil.which("apt-get") is None:
            raise CannotRun(f"{', '.join(missing)} missing and no apt-get to install them")
        say("installing qemu-user-static and debootstrap (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        proc = run(["apt-get", "install", "-y", "-qq", "qemu-user-static", "debootstrap"], env=env)
        if proc.returncode != 0:
            run(["apt-get", "update", "-qq"], env=env)
            proc = run(["apt-get", "install", "-y", "-qq", "qemu-user-static", "debootstrap"],
                       env=env)  # fmt: skip
        if proc.returncode != 0:
            raise CannotRun(f"apt-get could not install them: {proc.stderr.strip()[-300:]}")


def ensure_binfmt() -> None:
    if not (BINFMT / "register").exists():
        proc = run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
        if proc.returncode != 0:
            raise CannotRun(f"cannot mount binfmt_misc: {proc.stderr.strip()}")
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists():
        if not BINFMT_CONF.is_file():
            raise CannotRun(f"{BINFMT_CONF} missing (Debian's qemu-user-static provides it)")
        try:
            (BINFMT / "register").write_text(BINFMT_CONF.read_text().strip())
        except OSError as exc:
            raise CannotRun(f"cannot register the aarch64 interpreter: {exc}") from None
    if "enabled" not in entry.read_text():
        raise CannotRun("the aarch64 binfmt entry is registered but disabled")


# -- the root ------------------------------------------------------------------------------


def build_root(rootfs: Path) -> None:
    """debootstrap once (minutes: the second stage runs emulated), renamed into place."""
    if (rootfs / "usr" / "bin" / "python3").exists():
        return
    partial = rootfs.with_name(rootfs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    say(f"building a Debian {SUITE} arm64 root in {rootfs} (once; several minutes)")
    proc = run([
        "debootstrap", "--arch=arm64", "--variant=minbase",
        "--include=python3,python3-venv,libgomp1", SUITE, str(partial), MIRROR,
    ])  # fmt: skip
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        shutil.rmtree(partial, ignore_errors=True)
        raise CannotRun(f"debootstrap failed (network?): {' / '.join(tail)}")
    partial.rename(rootfs)


def download_wheels(wheels: Path) -> None:
    """The aarch64 wheels of the runtime's dependencies, at the pinned versions."""
    wheels.mkdir(parents=True, exist_ok=True)
    wanted = [pinned(p) for p in RUNTIME_PACKAGES]
    stamp = wheels / "pinned.txt"
    if stamp.is_file() and stamp.read_text().split() == wanted:
        return
    say(f"downloading aarch64 wheels: {', '.join(wanted)}")
    proc = run([
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--platform", PLATFORM, "--python-version", "3.11",
        "--implementation", "cp", "-d", str(wheels), *wanted,
    ])  # fmt: skip
    if proc.returncode != 0:
        raise CannotRun(f"pip download failed (network?): {proc.stderr.strip()[-300:]}")
    stamp.write_text("\n".join(wanted) + "\n")


@contextlib.contextmanager
def mounted(rootfs: Path) -> Iterator[None]:
    """/proc inside the root for the block (never /sys: see the module's docstring)."""
    proc_dir = rootfs / "proc"
    proc_dir.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(proc_dir)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(proc_dir)], check=False)


def in_root(rootfs: Path, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{VENV}/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"  # found on this machine's PATH
    return subprocess.run(
        [chroot, str(rootfs), *args], text=True, capture_output=True, env=env, timeout=timeout
    )


def install_edgegen(rootfs: Path, wheels: Path) -> str:
    """The edgegen wheel of this checkout and its runtime dependencies into the root's venv;
    returns the versions the root reports."""
    for old in wheels.glob("edgegen-*.whl"):
        old.unlink()
    proc = run([
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--disable-pip-version-check", "-w", str(wheels), str(ROOT),
    ])  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"check-arm64: building the edgegen wheel failed: {proc.stderr[-500:]}")
    inside = rootfs / "wheels"
    shutil.rmtree(inside, ignore_errors=True)
    shutil.copytree(wheels, inside)
    if not (rootfs / VENV.lstrip("/") / "bin" / "python").exists():
        step = in_root(rootfs, "python3", "-m", "venv", VENV)
        if step.returncode != 0:
            raise SystemExit(f"check-arm64: venv in the root failed: {step.stderr[-500:]}")
    step = in_root(
        rootfs, f"{VENV}/bin/pip", "install", "--quiet", "--no-index", "--find-links",
        "/wheels", "--force-reinstall", "edgegen[cpu]",
    )  # fmt: skip
    if step.returncode != 0:
        raise SystemExit(
            f"check-arm64: installing edgegen in the root failed: {step.stderr[-800:]}"
        )
    probe = in_root(
        rootfs, f"{VENV}/bin/python", "-c",
        "import platform, numpy, onnxruntime, edgegen.runtime as r; "
        "print(platform.machine(), platform.python_version(), numpy.__version__, "
        "onnxruntime.__version__, r.__version__)",
    )  # fmt: skip
    if probe.returncode != 0:
        raise SystemExit(f"check-arm64: the runtime does not import there: {probe.stderr[-800:]}")
    return probe.stdout.strip()


# -- the models ----------------------------------------------------------------------------


def edgegen(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "edgegen.cli", *args], cwd=cwd)


def fresh_exports(work: Path) -> list[Path]:
    """The `denoise-small` preset trained for a few steps here and exported: fp32, fp16, int8
    with the x86 layout, and int8 with --no-channel-pad."""
    run_dir = work / "run"
    steps = [
        ("train", "--preset", "denoise-small", "--steps", "8", "--patch", "32", "--batch", "4",
         "--workers", "0", "--no-progress", "--out", str(run_dir)),
        ("export", str(run_dir), "--out", str(work / "export"), "--precision",
         "fp32,fp16,int8", "--calib-count", "8", "--no-progress"),
        ("export", str(run_dir), "--out", str(work / "export-arm"), "--precision", "int8",
         "--no-channel-pad", "--calib-count", "8", "--no-progress"),
    ]  # fmt: skip
    for args in steps:
        proc = edgegen(*args)
        if proc.returncode != 0:
            raise SystemExit(f"check-arm64: edgegen {args[0]} failed: {proc.stderr.strip()}")
    return [
        work / "export" / "model.fp32.onnx",
        work / "export" / "model.fp16.onnx",
        work / "export" / "model.int8.onnx",
        work / "export-arm" / "model.int8.onnx",
    ]


def shipped() -> list[Path]:
    return sorted((ROOT / "models").glob("*/model.*.onnx"))


def extra_models(names: str) -> list[Path]:
    found: list[Path] = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        path = Path(name).resolve()
        if path.is_dir():
            found += sorted(p for p in path.glob("model.*.onnx"))
        elif path.is_file():
            found.append(path)
        else:
            raise SystemExit(f"check-arm64: --models: {name} is not a file or folder")
    return found


def make_photo(path: Path) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    clean = skdata.coffee()[100:196, 200:328].astype(np.float64)  # type: ignore[no-untyped-call]
    noisy = clean + np.random.default_rng(1).normal(0, 25, clean.shape)
    Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8)).save(path)


VERIFY_ROW = re.compile(r"^\s*(\S+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$")


def verify_summary(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """`edgegen verify`'s exit code and its rows (size, max LSB, >1 LSB %, PSNR vs torch)."""
    rows = []
    for line in proc.stdout.splitlines():
        m = VERIFY_ROW.match(line)
        if m:
            size, n, lsb, pct, db = m.groups()
            rows.append({"size": size, "images": int(n), "max_lsb": float(lsb),
                         "pct_over_1lsb": float(pct), "psnr_vs_torch": float(db)})  # fmt: skip
    out = {"exit": proc.returncode, "rows": rows}
    if proc.returncode != 0:
        out["output"] = (proc.stdout + proc.stderr).strip().splitlines()[-4:]
    return out


def layout_of(model: Path) -> str | None:
    """The int8 layout the manifest records: 'x86' (convolutions padded) or 'plain'."""
    manifest = json.loads(model.with_name(f"{model.stem}.manifest.json").read_text())
    calibration = manifest.get("calibration")
    if not isinstance(calibration, dict):
        return None
    return "x86 (channels padded)" if calibration.get("channel_pad") else "plain"


def check_models(rootfs: Path, models: list[Path], photo: Path) -> list[dict[str, Any]]:
    import numpy as np
    from PIL import Image

    work = rootfs / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    shutil.copyfile(photo, work / "photo.png")
    results = []
    for k, model in enumerate(models):
        folder = work / f"m{k}"
        folder.mkdir()
        for file in model.parent.glob(f"{model.stem}.*"):
            shutil.copyfile(file, folder / file.name)
        inside = f"/work/m{k}/{model.name}"
        if model.is_relative_to(ROOT):
            label = str(model.relative_to(ROOT))
        else:  # a fresh export: its folder says which layout was asked for
            label = f"fresh/{model.parent.name}/{model.name}"
        say(f"{label}: verify and run on arm64")
        arm = verify_summary(in_root(rootfs, f"{VENV}/bin/edgegen", "verify", inside,
                                     "--device", "cpu"))  # fmt: skip
        x86 = verify_summary(edgegen("verify", str(model), "--device", "cpu"))
        ran = in_root(rootfs, f"{VENV}/bin/edgegen", "run", inside, "/work/photo.png", "-o",
                      f"/work/m{k}/out", "--device", "cpu")  # fmt: skip
        host_out = Path(tempfile.mkdtemp(prefix="edgegen-arm64-"))
        here = edgegen("run", str(model), str(photo), "-o", str(host_out), "--device", "cpu")
        run_diff = None
        if ran.returncode == 0 and here.returncode == 0:
            a = np.asarray(Image.open(folder / "out" / "photo.png"), dtype=np.int16)
            b = np.asarray(Image.open(host_out / "photo.png"), dtype=np.int16)
            run_diff = int(np.abs(a - b).max())
        shutil.rmtree(host_out, ignore_errors=True)
        manifest = json.loads(model.with_name(f"{model.stem}.manifest.json").read_text())
        results.append({
            "model": label,
            "precision": manifest.get("precision"),
            "int8_layout": layout_of(model),
            "verify_arm64": arm,
            "verify_x86": x86,
            "run_arm64_exit": ran.returncode,
            "run_max_diff_vs_x86": run_diff,
        })  # fmt: skip
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify edgegen's models on emulated ARM64.")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--models",
        default="",
        help="more exported models to check, comma-separated ONNX files or export folders",
    )
    parser.add_argument(
        "--allow-skip", action="store_true", help="exit 0, saying why, where it cannot run here"
    )
    args = parser.parse_args(argv)
    rootfs, wheels = CACHE / "root", CACHE / "wheels"
    try:
        ensure_tools()
        ensure_binfmt()
        build_root(rootfs)
        download_wheels(wheels)
    except CannotRun as exc:
        say(f"not run: {exc}")
        return 0 if args.allow_skip else 3
    versions = install_edgegen(rootfs, wheels)
    say(f"the root runs: {versions} (machine, python, numpy, onnxruntime, edgegen)")
    with tempfile.TemporaryDirectory(prefix="edgegen-arm64-") as tmp:
        work = Path(tmp)
        models = shipped() + extra_models(args.models) + fresh_exports(work)
        make_photo(work / "photo.png")
        with mounted(rootfs):
            results = check_models(rootfs, models, work / "photo.png")
    failed = []
    print(
        f"{'model':40} {'int8 layout':22} {'arm64':>6} {'x86':>6} {'PSNR arm64':>10} "
        f"{'PSNR x86':>9} {'run Δ':>6}"
    )
    for r in results:
        arm, x86 = r["verify_arm64"], r["verify_x86"]
        worst = min((row["psnr_vs_torch"] for row in arm["rows"]), default=float("nan"))
        worst_x86 = min((row["psnr_vs_torch"] for row in x86["rows"]), default=float("nan"))
        verdict = {0: "PASS", 1: "FAIL"}.get(arm["exit"], f"exit {arm['exit']}")
        host = {0: "PASS", 1: "FAIL"}.get(x86["exit"], f"exit {x86['exit']}")
        diff = r["run_max_diff_vs_x86"]
        print(
            f"{r['model'][-40:]:40} {r['int8_layout'] or '-':22} {verdict:>6} {host:>6} "
            f"{worst:10.2f} {worst_x86:9.2f} {'-' if diff is None else diff:>6}"
        )
        if arm["exit"] != 0 or r["run_arm64_exit"] != 0:
            failed.append(r["model"])
            for line in arm.get("output", []):
                print(f"    {line}")
    if args.json:
        record = {
            "command": "python scripts/check_arm64.py " + " ".join(argv or sys.argv[1:]),
            "host": platform.machine(),
            "arm64_root": f"Debian {SUITE} arm64 under qemu-user-static",
            "arm64_versions": versions,
            "models": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    if failed:
        say(f"FAIL: {len(failed)} model(s) do not verify on arm64: {', '.join(failed)}")
        return 1
    say(f"PASS: {len(results)} models verified on arm64")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
