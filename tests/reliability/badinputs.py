"""The catalogue of bad (and awkward but legitimate) inputs to every command, as one table.

Each :class:`Case` builds its files in a fresh folder, names the command line (or, for the
Python API, a call) and says what must happen: the exit code, the words the one stderr line must
hold, and for inputs that are legitimately accepted a check of the output against what Pillow or
numpy say it must be. docs/reliability.md's table lists the same ids (tests/reliability/
test_readme_table.py keeps the two in step).

Images go through an identity ONNX model (with an edgegen spec), so the expected output of an
accepted image is its correctly decoded pixels, computed here with Pillow and numpy, not by
edgegen.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage import data as skdata

from edgegen.runtime.spec import METADATA_KEY, ModelSpec

DENOISE = ModelSpec(task="denoise")


@dataclass
class Env:
    """Where a case builds its inputs (``tmp``) and the shared, read-only models it may use."""

    tmp: Path
    models: Path  # a tiny exported model: model.fp32.onnx + manifest + golden samples
    ckpt: Path  # a tiny checkpoint (.safetensors) for export
    identity: Path  # an identity ONNX model with a denoise spec, no manifest
    extra: dict[str, Any] = field(default_factory=dict)  # what a builder wants its check to see

    @property
    def model(self) -> str:
        return str(self.models / "model.fp32.onnx")

    def path(self, name: str) -> Path:
        return self.tmp / name

    def out(self) -> str:
        return str(self.tmp / "out")


Builder = Callable[[Env], list[str]]
TINY_TRAIN = ("--arch", "tiny", "--steps", "1", "--patch", "32", "--batch", "2", "--workers", "0")
Check = Callable[[Env, Any], None]


@dataclass(frozen=True)
class Case:
    """``argv`` (after ``edgegen``) or ``api`` (a Python call) -> ``code`` and ``needles``.

    ``check``: for accepted inputs, what the output must be. ``marker``: a file the case's
    payload would create if it were ever executed (a pickle's ``__reduce__``)."""

    id: str
    command: str
    what: str
    argv: Builder | None = None
    code: int = 2
    needles: tuple[str, ...] = ()
    check: Check | None = None
    marker: str | None = None
    api: Callable[[Env], Any] | None = None


# -- images ------------------------------------------------------------------------------------


def photo_crop(h: int = 24, w: int = 32) -> np.ndarray:
    """A crop of a real photo (scikit-image's chelsea), uint8 RGB."""
    return np.ascontiguousarray(skdata.chelsea()[100 : 100 + h, 150 : 150 + w])


def save(path: Path, array: np.ndarray, **kwargs: Any) -> Path:
    Image.fromarray(array).save(path, **kwargs)
    return path


def truncated(env: Env) -> Path:
    path = save(env.path("cut.png"), photo_crop(64, 64))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def huge_header(env: Env) -> Path:
    """A 100-byte PNG whose header claims 20000 x 20000 pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path = env.path("huge.png")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def animated(env: Env, suffix: str) -> Path:
    frames = [Image.fromarray(photo_crop()), Image.fromarray(photo_crop()[::-1].copy())]
    path = env.path(f"anim.{suffix}")
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def exif_rotated(env: Env) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    return save(env.path("rot.png"), photo_crop(), exif=exif)


def run_image(make: Callable[[Env], Path]) -> Builder:
    """``edgegen run IDENTITY IMAGE -o OUT``."""

    def argv(env: Env) -> list[str]:
        return ["run", str(env.identity), str(make(env)), "-o", env.out(), "--no-progress"]

    return argv


def output_is(expected: Callable[[Env], np.ndarray], name: str) -> Check:
    """The one output OUT/<name> holds exactly ``expected`` (dtype, shape and pixels)."""

    def check(env: Env, _result: Any) -> None:
        outs = sorted(p.name for p in Path(env.out()).iterdir())
        assert outs == [name], outs
        with Image.open(Path(env.out()) / name) as im:
            got = np.asarray(im)
        want = expected(env)
        assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape)
        np.testing.assert_array_equal(got, want)

    return check


def pillow_decode(name: str, mode: str) -> Callable[[Env], np.ndarray]:
    def decode(env: Env) -> np.ndarray:
        with Image.open(env.path(name)) as im:
            return np.asarray(im.convert(mode))

    return decode


def sixteen_bit(env: Env) -> Path:
    ramp = np.linspace(0, 65535, 24 * 32).reshape(24, 32).astype(np.uint16)
    env.extra["g16"] = ramp
    return save(env.path("g16.png"), ramp)


# -- models ------------------------------------------------------------------------------------


def graph_with_spec(
    path: Path,
    spec_text: str | None,
    in_shape: list[Any],
    out_shape: list[Any],
    nodes: list[Any],
    initializers: list[Any] | None = None,
) -> Path:
    """A small ONNX graph with ``spec_text`` stored where edgegen's spec goes."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
        initializers or [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if spec_text is not None:
        helper.set_model_props(model, {METADATA_KEY: spec_text})
    onnx.save(model, str(path))
    return path


def identity_with(spec_text: str | None, channels: int = 3) -> Callable[[Env], Path]:
    from onnx import helper

    def make(env: Env) -> Path:
        shape = ["N", channels, "H", "W"]
        node = helper.make_node("Identity", ["input"], ["output"])
        return graph_with_spec(env.path("m.onnx"), spec_text, shape, shape, [node])

    return make


def pooling_model(env: Env) -> Path:
    """An ONNX model of another kind: it averages the image to one pixel per channel."""
    from onnx import helper

    node = helper.make_node("GlobalAveragePool", ["input"], ["output"])
    return graph_with_spec(
        env.path("pool.onnx"), DENOISE.to_json(), ["N", 3, "H", "W"], ["N", 3, 1, 1], [node]
    )


def matmul_model(env: Env) -> Path:
    """An ONNX model of another kind: a 2-D matrix product (a classifier's last layer)."""
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((8, 3), np.float32), "w")
    node = helper.make_node("MatMul", ["input", "w"], ["output"])
    return graph_with_spec(
        env.path("fc.onnx"), DENOISE.to_json(), ["N", 8], ["N", 3], [node], [weight]
    )


def external_data_model(location: str, symlink_to: Path | None = None) -> Callable[[Env], Path]:
    """An edgegen-looking model whose weights are external data at ``location``."""
    from onnx import TensorProto, helper, numpy_helper

    def make(env: Env) -> Path:
        folder = env.path("model")
        folder.mkdir()
        secret = env.path("secret.bin")
        secret.write_bytes(np.zeros(3, np.float32).tobytes())
        if symlink_to is not None:
            os.symlink(secret, folder / location)
        w = numpy_helper.from_array(np.zeros((1, 3, 1, 1), np.float32), "w")
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        where = str(secret) if location == "ABSOLUTE" else location
        for key, value in {"location": where, "offset": "0", "length": "12"}.items():
            entry = w.external_data.add()
            entry.key, entry.value = key, value
        node = helper.make_node("Add", ["input", "w"], ["output"])
        shape = ["N", 3, "H", "W"]
        return graph_with_spec(folder / "model.onnx", DENOISE.to_json(), shape, shape, [node], [w])

    return make


class Payload:
    """Unpickling this runs ``touch MARKER``: proof that a file was (or was never) unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def pickle_file(name: str) -> Callable[[Env], Path]:
    def make(env: Env) -> Path:
        path = env.path(name)
        path.write_bytes(pickle.dumps({"state_dict": Payload(env.path("UNPICKLED"))}))
        return path

    return make


def state_dict_file(env: Env) -> Path:
    """A .pth state dict whose keys match no architecture spandrel knows."""
    import torch

    path = env.path("x.pth")
    torch.save({"encoder.w": torch.zeros(3, 3), "decoder.w": torch.zeros(3)}, path)
    return path


def truncated_safetensors(env: Env) -> Path:
    from safetensors.numpy import save

    data = save({"conv.weight": np.zeros((8, 3, 3, 3), np.float32)})
    path = env.path("w.safetensors")
    path.write_bytes(data[: len(data) // 2])
    return path


USER_MODULE = """
import torch
from torch import nn


def not_a_module():
    return {"conv": 1}


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x), x


def pair():
    return Pair()
"""


def user_module(env: Env) -> Path:
    path = env.path("nets.py")
    path.write_text(USER_MODULE)
    return path


def random_bytes(name: str) -> Callable[[Env], Path]:
    def make(env: Env) -> Path:
        path = env.path(name)
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        return path

    return make


def model_copy(env: Env) -> Path:
    """A private copy of the exported model folder (onnx + manifest + golden)."""
    folder = env.path("export")
    folder.mkdir()
    for src in env.models.iterdir():
        (folder / src.name).write_bytes(src.read_bytes())
    return folder / "model.fp32.onnx"


def truncated_model(env: Env) -> Path:
    path = env.path("cut.onnx")
    raw = Path(env.model).read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def tampered_model(env: Env) -> Path:
    """The exported model with one byte of its weights changed; its manifest left as it was."""
    import onnx

    path = model_copy(env)
    model = onnx.load(str(path))
    init = model.graph.initializer[0]
    values = np.frombuffer(init.raw_data, np.float32).copy() if init.raw_data else None
    if values is not None:
        values[0] += np.float32(0.5)
        init.raw_data = values.tobytes()
    else:
        init.float_data[0] += 0.5
    onnx.save(model, str(path))
    return path


def bad_manifest(env: Env) -> Path:
    path = model_copy(env)
    path.with_name("model.fp32.manifest.json").write_text("{ not json")
    return path


def run_model(make: Callable[[Env], Path], *extra: str) -> Builder:
    """``edgegen run MODEL PHOTO -o OUT``."""

    def argv(env: Env) -> list[str]:
        image = save(env.path("photo.png"), photo_crop())
        return ["run", str(make(env)), str(image), "-o", env.out(), "--no-progress", *extra]

    return argv


def cmd_model(command: str, make: Callable[[Env], Path], *extra: str) -> Builder:
    def argv(env: Env) -> list[str]:
        return [command, str(make(env)), *extra]

    return argv


# -- configs, presets and paths ------------------------------------------------------------------


def preset(text: str) -> Builder:
    def argv(env: Env) -> list[str]:
        path = env.path("preset.toml")
        path.write_text(text)
        return ["train", "--preset", str(path), "--out", env.out(), "--arch", "tiny"]

    return argv


def a_file(env: Env, name: str = "notes.txt") -> Path:
    path = env.path(name)
    path.write_text("a file the user keeps here\n")
    return path


def photos_folder(env: Env, n: int = 2) -> Path:
    folder = env.path("photos")
    folder.mkdir(exist_ok=True)
    for i in range(n):
        save(folder / f"p{i}.png", photo_crop(20 + i, 28))
    return folder


def export_args(*extra: str) -> Builder:
    def argv(env: Env) -> list[str]:
        return ["export", str(env.ckpt), "--out", env.out(), "--no-progress", *extra]

    return argv


def compare_args(*extra: str) -> Builder:
    def argv(env: Env) -> list[str]:
        return ["compare", "--reference", env.model, env.model, "--repeats", "1", *extra]

    return argv


def bench_args(*extra: str) -> Builder:
    def argv(env: Env) -> list[str]:
        return ["bench", env.model, "--sizes", "16", "--rounds", "1", *extra]

    return argv


def existing_output_skipped(env: Env, result: Any) -> None:
    out = Path(env.out())
    assert (out / "photo.png").read_bytes() == b"an earlier output\n"
    assert "already exist" in result.stderr and "--overwrite" in result.stderr


def with_existing_output(env: Env) -> list[str]:
    (env.path("out")).mkdir()
    (env.path("out") / "photo.png").write_bytes(b"an earlier output\n")
    return run_model(lambda e: Path(e.identity))(env)


def with_output_folder(env: Env) -> list[str]:
    (env.path("out") / "photo.png").mkdir(parents=True)
    return run_model(lambda e: Path(e.identity))(env)


def ran_ok(env: Env, result: Any) -> None:
    outs = [p.name for p in Path(env.out()).iterdir()]
    assert outs == ["photo.png"], outs
    with Image.open(Path(env.out()) / "photo.png") as im:
        assert im.size == (32, 24) and im.mode == "RGB"


def no_unpickle_marker(env: Env) -> None:
    assert not env.path("UNPICKLED").exists(), "a pickle was loaded"


def _png_bytes(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def jpeg_named_png(env: Env) -> Path:
    path = env.path("photo.png")
    path.write_bytes(_png_bytes(photo_crop(), "JPEG"))
    return path


def text_named_jpg(env: Env) -> Path:
    return a_file(env, "notes.jpg")


def empty_file(env: Env) -> Path:
    path = env.path("empty.png")
    path.write_bytes(b"")
    return path


def folder_named(env: Env, name: str) -> Path:
    path = env.path(name)
    path.mkdir()
    return path


def folder_named_png(env: Env) -> Path:
    return folder_named(env, "folder.png")


def palette(env: Env, transparent: bool) -> Path:
    im = Image.fromarray(photo_crop()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    if transparent:
        im.info["transparency"] = 0
        im.save(env.path("pal.png"), transparency=0)
    else:
        im.save(env.path("pal.png"))
    return env.path("pal.png")


def cmyk_jpeg(env: Env) -> Path:
    Image.fromarray(photo_crop()).convert("CMYK").save(env.path("cmyk.jpg"), quality=95)
    return env.path("cmyk.jpg")


def one_pixel(env: Env) -> Path:
    return save(env.path("dot.png"), np.array([[[200, 30, 90]]], np.uint8))


def _gen(path: Path | str, **kwargs: Any) -> Any:
    from edgegen.runtime import Generator

    return Generator(path, device="cpu", **kwargs)


def api(build: Callable[[Env], Any], call: Callable[[Any], Any]) -> Callable[[Env], Any]:
    """A Python-API case: ``build(env)`` makes the files, the returned thunk makes the call."""

    def make(env: Env) -> Callable[[], Any]:
        built = build(env)
        return lambda: call(built)

    return make


def _accepts_tampered(path: Path) -> None:
    out = _gen(path, verify_manifest=False)(photo_crop())
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8


# -- round two: forged verification, files that are not edgegen's, devices, limits ----------------


def golden_of(model: Path) -> Path:
    return model.with_suffix(".golden.npz")


def forged_golden(env: Env) -> Path:
    """The fp32 model's golden file replaced by another precision's (any passing samples)."""
    model = model_copy(env)
    other = env.tmp / "other.golden.npz"
    golden = dict(np.load(golden_of(model)))
    golden["output_0"] = golden["output_0"] + np.float32(0.25)  # what a forger would swap in
    np.savez(other, **golden)
    golden_of(model).write_bytes(other.read_bytes())
    other.unlink()
    return model


def zeroed_golden(tolerance: float, keep_manifest: bool) -> Callable[[Env], Path]:
    """Torch outputs zeroed and max_lsb set to ``tolerance``: a golden file made to pass."""
    import json

    def make(env: Env) -> Path:
        model = model_copy(env)
        golden = dict(np.load(golden_of(model)))
        meta = json.loads(golden["meta"].tobytes())
        meta["tolerance"] = {"max_lsb": tolerance}
        golden["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        for key in [k for k in golden if k.startswith("output_")]:
            golden[key] = np.zeros_like(golden[key])
        with open(golden_of(model), "wb") as fh:
            np.savez(fh, **golden)
        if not keep_manifest:
            model.with_name("model.fp32.manifest.json").unlink()
        return model

    return make


def without_manifest(env: Env) -> Path:
    model = model_copy(env)
    model.with_name("model.fp32.manifest.json").unlink()
    return model


def manifest_without_golden(env: Env) -> Path:
    import json

    model = model_copy(env)
    path = model.with_name("model.fp32.manifest.json")
    data = json.loads(path.read_text())
    del data["golden"]
    path.write_text(json.dumps(data))
    return model


def says_not_vouched(env: Env, result: Any) -> None:
    assert "PASS" in result.stdout and "not vouched for" in result.stdout, result.stdout


def user_temp_in_out(env: Env) -> list[str]:
    """A user's own hidden temporary in --out: export must leave it alone."""
    out = env.path("out")
    out.mkdir()
    (out / ".notes.tmp").write_text("the user's notes\n")
    (out / ".draft.k1ll3d00.tmp").write_text("the user's draft\n")
    return export_args("--precision", "fp32")(env)


def locked(folder: str, argv: list[str], env: Env) -> list[str]:
    """Hold the folder's lock as another edgegen process would (flock; see folder_lock)."""
    import fcntl

    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    env.extra["lock_fd"] = fd
    return argv


def release_lock(env: Env, _result: Any) -> None:
    os.close(env.extra.pop("lock_fd"))


def device_node(env: Env, name: str) -> Path:
    """A character device like /dev/null (as root: mknod 1,3), else a FIFO with a reader: a
    target that is not a regular file, which a rename would replace."""
    import stat

    path = env.path(name)
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:  # mknod is root's
        return fifo_with_reader(env, name)
    return path


def fifo_with_reader(env: Env, name: str) -> Path:
    import threading

    path = env.path(name)
    os.mkfifo(path)
    received: list[bytes] = []
    env.extra["received"] = received

    def drain() -> None:
        with open(path, "rb") as fh:
            received.append(fh.read())

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    env.extra["reader"] = thread
    return path


def still_special(name: str, holds: str = "") -> Check:
    """The target is still a device or FIFO (not replaced by a file); a FIFO's reader got the
    report (its text holds ``holds``)."""

    def check(env: Env, _result: Any) -> None:
        import stat

        mode = os.stat(env.path(name)).st_mode
        assert stat.S_ISCHR(mode) or stat.S_ISFIFO(mode), oct(mode)
        reader = env.extra.get("reader")
        if reader is not None:
            reader.join(30)
            assert holds in b"".join(env.extra["received"]).decode(), env.extra["received"]

    return check


def fixed_size_model(env: Env) -> Path:
    from onnx import helper

    node = helper.make_node("Identity", ["input"], ["output"])
    shape = [1, 3, 16, 16]
    return graph_with_spec(env.path("fixed.onnx"), DENOISE.to_json(), shape, shape, [node])


def reshape_model(env: Env) -> Path:
    """A graph that reshapes to one fixed size: onnxruntime fails at run time on any other."""
    from onnx import helper, numpy_helper

    target = numpy_helper.from_array(np.array([1, 3, 16, 16], np.int64), "shape")
    node = helper.make_node("Reshape", ["input", "shape"], ["output"])
    shape = ["N", 3, "H", "W"]
    return graph_with_spec(
        env.path("reshape.onnx"), DENOISE.to_json(), shape, shape, [node], [target]
    )


def nan_model(env: Env) -> Path:
    """output = (input * 0) / 0: NaN everywhere, as an overflowing fp16 network gives."""
    from onnx import helper, numpy_helper

    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    nodes = [
        helper.make_node("Mul", ["input", "zero"], ["z"]),
        helper.make_node("Div", ["z", "zero"], ["output"]),
    ]
    shape = ["N", 3, "H", "W"]
    return graph_with_spec(env.path("nan.onnx"), DENOISE.to_json(), shape, shape, nodes, [zero])


def spec_with(**fields: Any) -> str:
    import json

    data = DENOISE.to_dict()
    data.update(fields)
    return json.dumps(data)


def float_tiff(env: Env) -> Path:
    ramp = np.linspace(0.0, 1.0, 24 * 32, dtype=np.float32).reshape(24, 32)
    env.extra["ramp"] = ramp
    Image.fromarray(ramp, mode="F").save(env.path("f.tif"))
    return env.path("f.tif")


def float_kept(env: Env, _result: Any) -> None:
    with Image.open(Path(env.out()) / "f.png") as im:
        got = np.asarray(im)
    want = np.rint(env.extra["ramp"] * 65535).astype(np.uint16)
    assert got.dtype == np.uint16 and got.shape == (24, 32), (got.dtype, got.shape)
    np.testing.assert_array_equal(got, want)


def icc_photo(env: Env) -> Path:
    """A photo with an embedded ICC profile (Pillow's built-in sRGB one, marked as ours)."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    env.extra["icc"] = profile
    return save(env.path("wide.png"), photo_crop(), icc_profile=profile)


def icc_carried(env: Env, _result: Any) -> None:
    with Image.open(Path(env.out()) / "wide.png") as im:
        assert im.info.get("icc_profile") == env.extra["icc"], "the ICC profile was lost"
        np.testing.assert_array_equal(np.asarray(im), photo_crop())


def shipped_root_escape(env: Env) -> Path:
    """A shipped-model folder whose manifest points its file outside the folder."""
    import json

    root = env.path("zoo")
    folder = root / "evil"
    folder.mkdir(parents=True)
    data = json.loads((env.models / "model.fp32.manifest.json").read_text())
    data["file"] = "../../secret.onnx"
    (folder / "model.fp32.manifest.json").write_text(json.dumps(data))
    return root


def _shipped(root: Path) -> Any:
    from edgegen.runtime.zoo import shipped_models

    return shipped_models(root)


def dash_named(env: Env) -> list[str]:
    image = save(env.path("-x.png"), photo_crop())
    return ["run", str(env.identity), "-o", env.out(), "--no-progress", "--", image.name]


def dash_written(env: Env, _result: Any) -> None:
    assert (Path(env.out()) / "-x.png").is_file()


def long_named(env: Env) -> list[str]:
    name = "b" * 251 + ".png"  # 255 bytes: the longest name Linux allows
    image = save(env.path(name), photo_crop())
    env.extra["name"] = name
    return ["run", str(env.identity), str(image), "-o", env.out(), "--no-progress"]


def long_written(env: Env, _result: Any) -> None:
    assert [p.name for p in Path(env.out()).iterdir()] == [env.extra["name"]]


def symlink_loop(env: Env) -> Path:
    path = env.path("loop.onnx")
    os.symlink(path.name, path)
    return path


def broken_symlink(env: Env) -> Path:
    path = env.path("gone.png")
    os.symlink("nowhere.png", path)
    return path


def fifo(name: str) -> Callable[[Env], Path]:
    def make(env: Env) -> Path:
        path = env.path(name)
        os.mkfifo(path)
        return path

    return make


def glob_over_output(env: Env) -> list[str]:
    """``run 'photos/**/*.png' -o photos/out`` rerun: the first run's output lies under the
    glob, and must not be taken for an input."""
    photos = photos_folder(env, 1)
    out = photos / "out"
    out.mkdir()
    (out / "p0.png").write_bytes(_png_bytes(photo_crop(20, 28), "PNG"))  # the first run's
    return ["run", str(env.identity), str(photos / "**" / "*.png"), "-o", str(out)]


def glob_rerun_skipped(env: Env, result: Any) -> None:
    assert "already exist" in result.stderr, result.stderr


def threads_capped(env: Env, result: Any) -> None:
    assert "capped at" in result.stderr, result.stderr
    ran_ok(env, result)


CASES: list[Case] = [
    # ---- images (edgegen run through an identity model) ----
    Case("image-truncated", "run", "a PNG cut in half", run_image(truncated), 2,
         ("cut.png", "unreadable")),
    Case("image-zero-bytes", "run", "an empty file", run_image(empty_file), 2,
         ("empty.png", "not an image")),
    Case("image-text-named-jpg", "run", "a text file named .jpg", run_image(text_named_jpg), 2,
         ("notes.jpg", "not an image")),
    Case("image-jpeg-named-png", "run", "accepted: decoded by content, not by suffix",
         run_image(jpeg_named_png), 0,
         check=output_is(pillow_decode("photo.png", "RGB"), "photo.png")),
    Case("image-1x1", "run", "accepted: a 1x1 output", run_image(one_pixel), 0,
         check=output_is(lambda e: np.array([[[200, 30, 90]]], np.uint8), "dot.png")),
    Case("image-huge-header", "run", "a 100-byte PNG whose header claims 20000x20000",
         run_image(huge_header), 2, ("huge.png", "400000000 pixels, over the limit")),
    Case("image-16bit-gray", "run", "accepted: 16-bit in, 16-bit PNG out",
         run_image(sixteen_bit), 0,
         check=output_is(lambda e: e.extra["g16"], "g16.png")),
    Case("image-cmyk", "run", "accepted: converted to RGB", run_image(cmyk_jpeg), 0,
         check=output_is(pillow_decode("cmyk.jpg", "RGB"), "cmyk.png")),
    Case("image-palette", "run", "accepted: converted to RGB",
         run_image(lambda e: palette(e, False)), 0,
         check=output_is(pillow_decode("pal.png", "RGB"), "pal.png")),
    Case("image-palette-transparent", "run", "accepted: RGBA, alpha carried through",
         run_image(lambda e: palette(e, True)), 0,
         check=output_is(pillow_decode("pal.png", "RGBA"), "pal.png")),
    Case("image-animated-gif", "run", "an animated GIF, 2 frames",
         run_image(lambda e: animated(e, "gif")), 2, ("anim.gif", "animated", "2 frames")),
    Case("image-animated-webp", "run", "an animated WebP, 2 frames",
         run_image(lambda e: animated(e, "webp")), 2, ("anim.webp", "animated")),
    Case("image-exif-rotated", "run", "accepted: EXIF orientation applied",
         run_image(exif_rotated), 0,
         check=output_is(lambda e: np.rot90(photo_crop(), k=-1), "rot.png")),
    Case("image-folder-as-file", "run", "a folder named like an image",
         run_image(folder_named_png), 2, ("folder.png", "holds no images")),
    # ---- models ----
    Case("model-random-bytes", "run", "4 KB of random bytes as model.onnx",
         run_model(random_bytes("model.onnx")), 2, ("model.onnx", "not an ONNX model")),
    Case("model-pickle", "run", "a pickle as model.onnx: never unpickled",
         run_model(pickle_file("model.onnx")), 2, ("model.onnx", "not an ONNX model"),
         marker="UNPICKLED"),
    Case("model-truncated", "verify", "an ONNX file cut in half",
         cmd_model("verify", truncated_model), 2, ("cut.onnx", "not an ONNX model")),
    Case("model-missing", "verify", "no such file",
         cmd_model("verify", lambda e: e.path("nope.onnx")), 2, ("nope.onnx", "no such file")),
    Case("model-is-a-folder", "run", "a folder named model.onnx as MODEL",
         run_model(lambda e: folder_named(e, "model.onnx")), 2, ("model.onnx", "is a folder")),
    Case("model-other-matmul", "run", "another model: a 2-D MatMul",
         run_model(matmul_model), 2, ("fc.onnx", "not an edgegen image model", "rank 2")),
    Case("model-other-pooling", "run", "another model: output 1x1 whatever the input",
         run_model(pooling_model), 2, ("pool.onnx", "does not match the spec")),
    Case("model-no-spec", "run", "an ONNX without edgegen's spec",
         run_model(identity_with(None)), 2, ("m.onnx", "no edgegen spec")),
    Case("spec-not-json", "run", "spec metadata is not JSON",
         run_model(identity_with("{task: denoise")), 2, ("bad edgegen spec", "not valid JSON")),
    Case("spec-unknown-field", "run", "spec with a field edgegen does not know",
         run_model(identity_with('{"task": "denoise", "colour": "RGB"}')), 2,
         ("bad edgegen spec", "unknown field(s): colour")),
    Case("spec-wrong-type", "run", "spec with scale \"two\"",
         run_model(identity_with('{"task": "sr", "scale": "two"}')), 2,
         ("bad edgegen spec", "spec.scale must be an integer")),
    Case("spec-lies-about-scale", "run", "spec says x2, the model keeps the size",
         run_model(identity_with(ModelSpec(task="sr", scale=2).to_json())), 2,
         ("output shape", "does not match the spec")),
    Case("spec-lies-about-channels", "run", "spec says gray, the model takes RGB",
         run_model(identity_with(
             ModelSpec(task="denoise", in_channels=1, out_channels=1, color_order="GRAY").to_json()
         )), 2, ("spec says 1 channel",)),
    Case("model-sha256-mismatch", "run", "weights changed after export, manifest beside it",
         run_model(tampered_model), 2, ("sha256", "does not match its manifest")),
    Case("model-sha256-mismatch-no-verify", "run", "accepted with --no-verify",
         run_model(tampered_model, "--no-verify"), 0, check=ran_ok),
    Case("verify-sha256-mismatch", "verify", "edgegen verify refuses it too",
         cmd_model("verify", tampered_model), 2, ("does not match its manifest",)),
    Case("model-manifest-not-json", "run", "a manifest beside the model that is not JSON",
         run_model(bad_manifest), 2, ("manifest", "unreadable")),
    Case("model-external-data-parent", "run", "external data at ../secret.bin",
         run_model(external_data_model("../secret.bin")), 2,
         ("outside the model's folder", "escapes model directory")),
    Case("model-external-data-absolute", "run", "external data at an absolute path",
         run_model(external_data_model("ABSOLUTE")), 2,
         ("outside the model's folder", "Absolute path not allowed")),
    Case("model-external-data-symlink", "run", "external data through a symlink out of the folder",
         run_model(external_data_model("w.bin", symlink_to=Path("secret.bin"))), 2,
         ("outside the model's folder", "escapes model directory")),
    Case("compare-variant-random-bytes", "compare", "a variant that is random bytes",
         lambda e: ["compare", "--reference", e.model, str(random_bytes("v.onnx")(e))], 2,
         ("v.onnx", "not an ONNX model")),
    Case("bench-model-pickle", "bench", "a pickle as the benchmarked model",
         lambda e: ["bench", str(pickle_file("b.onnx")(e)), "--sizes", "16"], 2,
         ("b.onnx",), marker="UNPICKLED"),
    # ---- checkpoints (edgegen export) ----
    Case("export-pickle-checkpoint", "export", "a pickle named .safetensors: never unpickled",
         lambda e: ["export", str(pickle_file("ckpt.safetensors")(e)), "--out", e.out()], 2,
         ("not a readable safetensors checkpoint",), marker="UNPICKLED"),
    Case("export-zero-byte-checkpoint", "export", "an empty .safetensors",
         lambda e: ["export", str(empty_file(e).rename(e.path("c.safetensors"))), "--out",
                    e.out()], 2, ("c.safetensors",)),
    Case("export-checkpoint-missing", "export", "no such checkpoint",
         lambda e: ["export", str(e.path("nope.safetensors")), "--out", e.out()], 2,
         ("nope.safetensors",)),
    Case("export-folder-without-checkpoint", "export", "a folder that holds no run",
         lambda e: ["export", str(photos_folder(e)), "--out", e.out()], 2,
         ("holds no checkpoint",)),
    Case("export-pth-pickle", "export", "a .pth whose pickle runs a command: never unpickled",
         lambda e: ["export", str(pickle_file("model.pth")(e)), "--out", e.out()], 2,
         ("model.pth holds pickled Python objects", "state_dict()"), marker="UNPICKLED"),
    Case("export-state-dict-unknown", "export", "a state dict of no known architecture",
         lambda e: ["export", str(state_dict_file(e)), "--out", e.out()], 2,
         ("no known architecture matches its keys", "--module")),
    Case("export-safetensors-truncated", "export", "a plain .safetensors cut in half",
         lambda e: ["export", str(truncated_safetensors(e)), "--out", e.out()], 2,
         ("w.safetensors is not a readable safetensors",)),
    Case("export-module-not-importable", "export", "--module names nothing importable",
         lambda e: ["export", "--module", "no_such_pkg.nets:make", "--out", e.out()], 2,
         ("cannot import no_such_pkg.nets",)),
    Case("export-module-not-a-module", "export", "a factory that returns a dict",
         lambda e: ["export", "--module", f"{user_module(e)}:not_a_module", "--out", e.out()], 2,
         ("returned dict, not a torch nn.Module",)),
    Case("export-module-not-an-image", "export", "a module whose output is not an image",
         lambda e: ["export", "--module", f"{user_module(e)}:pair", "--out", e.out()], 2,
         ("not an image", "tuple")),
    Case("export-out-is-a-file", "export", "--out names an existing file",
         lambda e: ["export", str(e.ckpt), "--out", str(a_file(e))], 2,
         ("notes.txt", "not writable")),
    Case("export-tolerance-unknown", "export", "--tolerance fp32.bogus=1",
         export_args("--tolerance", "fp32.bogus=1"), 2, ("bogus",)),
    Case("export-tolerance-not-a-number", "export", "--tolerance fp32.max_lsb=abc",
         export_args("--tolerance", "fp32.max_lsb=abc"), 2, ("fp32.max_lsb=abc",)),
    Case("export-calib-count-zero", "export", "--calib-count 0",
         export_args("--precision", "int8", "--calib-count", "0"), 2, ("--calib-count",)),
    Case("export-calib-missing", "export", "--calib names no folder",
         lambda e: export_args("--precision", "int8", "--calib", str(e.path("nope")))(e), 2,
         ("nope",)),
    # ---- configs and presets (edgegen train) ----
    Case("preset-unknown-key", "train", "a preset with a key train does not know",
         preset('task = "denoise"\nlearning_rate = 0.1\n'), 2, ("preset.toml", "learning_rate")),
    Case("preset-wrong-type", "train", "steps = \"ten\" in a preset",
         preset('steps = "ten"\n'), 2, ("preset.toml", "steps")),
    Case("preset-out-of-range", "train", "lr = -1 in a preset",
         preset("lr = -1.0\n"), 2, ("--lr must be > 0",)),
    Case("train-patch-zero", "train", "--patch 0",
         lambda e: ["train", "--patch", "0", "--out", e.out()], 2, ("--patch must be > 0",)),
    Case("train-resume-missing", "train", "--resume names no run",
         lambda e: ["train", "--resume", str(e.path("nope"))], 2, ("nope",)),
    Case("train-out-is-a-file", "train", "--out names an existing file",
         lambda e: ["train", "--out", str(a_file(e)), "--arch", "tiny", "--steps", "1"], 2,
         ("notes.txt is a file",)),
    Case("train-photos-not-fetched", "train", "--data names data/photos/train before `make data`",
         lambda e: ["train", "--data", str(e.path("data/photos/train")), "--out", e.out()], 2,
         ("photos/train does not exist", "`make data` fetches")),
    Case("train-augment-unknown", "train", "--augment sepia",
         lambda e: ["train", "--augment", "flips,sepia", "--out", e.out()], 2,
         ("unknown augment 'sepia'",)),
    # ---- compare and bench options ----
    Case("compare-sizes-malformed", "compare", "--sizes 0x5",
         compare_args("--sizes", "0x5"), 2, ("0x5",)),
    Case("compare-images-empty-folder", "compare", "--images names a folder without images",
         lambda e: compare_args("--images", str(photos_folder(e, 0)))(e), 2, ("photos",)),
    Case("compare-provider-unknown", "compare", "--providers tpu",
         compare_args("--providers", "tpu"), 2, ("tpu",)),
    Case("compare-output-is-a-folder", "compare", "--output names an existing folder",
         lambda e: compare_args("--sizes", "16", "--output", str(photos_folder(e)))(e), 2,
         ("photos",)),
    Case("bench-size-full", "bench", "--sizes full", bench_args("--sizes", "full"), 2,
         ("'full' is not a bench size",)),
    Case("bench-batch-not-a-number", "bench", "--batch x", bench_args("--batch", "x"), 2,
         ("--batch must be integers",)),
    Case("bench-rounds-zero", "bench", "--rounds 0", bench_args("--rounds", "0"), 2,
         ("--rounds",)),
    Case("bench-json-under-a-file", "bench", "--json path inside a file",
         lambda e: bench_args("--json", str(a_file(e) / "r.json"))(e), 2,
         ("cannot write", "notes.txt/r.json")),
    # ---- runtimes ----
    Case("run-runtime-unknown", "run", "--runtime tflite (no such runtime)",
         lambda e: ["run", e.model, str(save(e.path("x.png"), photo_crop())), "-o", e.out(),
                    "--runtime", "tflite"], 2, ("unknown runtime 'tflite'",)),
    Case("run-runtime-web", "run", "--runtime web (a runtime of compare, not of run)",
         lambda e: ["run", e.model, str(save(e.path("x.png"), photo_crop())), "-o", e.out(),
                    "--runtime", "web"], 2, ("runtime web is for compare", "edgegen web")),
    Case("run-runtime-onnxruntime-option", "run", "--runtime onnxruntime:bf16",
         lambda e: ["run", e.model, str(save(e.path("x.png"), photo_crop())), "-o", e.out(),
                    "--runtime", "onnxruntime:bf16"], 2, ("takes no option",)),
    Case("run-runtime-openvino-session-option", "run", "--runtime openvino --cuda-graph",
         lambda e: ["run", e.model, str(save(e.path("x.png"), photo_crop())), "-o", e.out(),
                    "--runtime", "openvino", "--cuda-graph"], 2,
         ("do not apply to runtime openvino",)),
    Case("compare-runtime-unknown", "compare", "--runtimes onnxruntime,tflite",
         compare_args("--runtimes", "onnxruntime,tflite"), 2, ("unknown runtime 'tflite'",)),
    Case("compare-openvino-precision-unknown", "compare", "--runtimes openvino:int4",
         compare_args("--runtimes", "openvino:int4"), 2,
         ("unknown inference precision 'int4'",)),
    Case("bench-runtimes-empty", "bench", "--runtimes ','", bench_args("--runtimes", ","), 2,
         ("--runtimes is empty",)),
    Case("verify-runtime-web-host-unknown", "verify", "--runtime web:firefox",
         lambda e: ["verify", e.model, "--runtime", "web:firefox"], 2,
         ("runtime web runs in node or chromium, not 'firefox'",)),
    Case("verify-runtime-web-on-cuda", "verify", "--runtime web --device cuda",
         lambda e: ["verify", e.model, "--runtime", "web", "--device", "cuda"], 2,
         ("runtime web runs on the CPU",)),
    # ---- the web page (edgegen web, edgegen serve) ----
    Case("web-model-without-manifest", "web", "a model export did not write (no manifest)",
         lambda e: ["web", str(e.identity), "-o", e.out()], 2, ("has no manifest",)),
    Case("web-model-unknown", "web", "a name that is neither a file nor a shipped model",
         lambda e: ["web", "denoise-blnd", "-o", e.out()], 2, ("unknown model 'denoise-blnd'",)),
    Case("web-out-holds-other-files", "web", "-o names a folder of someone's files",
         lambda e: ["web", e.model, "-o", str(a_file(e).parent)], 2,
         ("not an edgegen page",)),
    Case("web-ort-web-not-a-package", "web", "--ort-web names a folder without onnxruntime-web",
         lambda e: ["web", e.model, "-o", e.out(), "--ort-web", str(e.tmp)], 2,
         ("not onnxruntime-web's package folder",)),
    Case("serve-folder-missing", "serve", "a folder that does not exist",
         lambda e: ["serve", str(e.path("nope"))], 2, ("is not a folder",)),
    # ---- paths (edgegen run) ----
    Case("run-input-missing", "run", "an input that does not exist",
         lambda e: ["run", e.model, str(e.path("nope.png")), "-o", e.out()], 2,
         ("nope.png", "no such file")),
    Case("run-out-is-input-folder", "run", "-o equal to the input folder",
         lambda e: ["run", e.model, str(photos_folder(e)), "-o", str(e.path("photos"))], 2,
         ("is the input folder",)),
    Case("run-out-inside-input-folder", "run", "-o inside the input folder",
         lambda e: ["run", e.model, str(photos_folder(e)), "-o", str(e.path("photos") / "o")], 2,
         ("lies inside the input folder",)),
    Case("run-out-overwrites-input", "run", "an output that would replace its own input",
         lambda e: ["run", e.model, str(save(e.path("x.png"), photo_crop())), "-o", str(e.tmp)],
         2, ("would overwrite the input",)),
    Case("run-out-is-a-file", "run", "-o names an existing file",
         lambda e: ["run", e.model, str(save(e.path("x.png"), photo_crop())), "-o",
                    str(a_file(e))], 2, ("is a file",)),
    Case("run-out-unwritable", "run", "-o inside a file (cannot be created)",
         lambda e: ["run", e.model, str(save(e.path("x.png"), photo_crop())), "-o",
                    str(a_file(e) / "out")], 2, ("cannot create output folder",)),
    Case("run-output-exists", "run", "accepted: an existing output is kept, its input skipped",
         with_existing_output, 0, check=existing_output_skipped),
    Case("run-output-is-a-folder", "run", "an output name taken by a folder",
         with_output_folder, 2, ("photo.png", "is a folder")),
    Case("run-tile-negative", "run", "--tile -1",
         run_model(lambda e: Path(e.model), "--tile", "-1"), 2, ("tile must be >= 0",)),
    Case("run-threads-zero", "run", "--threads 0",
         run_model(lambda e: Path(e.model), "--threads", "0"), 2, ("threads must be >= 1",)),
    # ---- the Python API ----
    Case("api-sha256-mismatch", "Generator", "Generator() on a model changed after export",
         api=api(tampered_model, _gen), needles=("does not match its manifest",)),
    Case("api-sha256-opt-out", "Generator", "accepted with verify_manifest=False",
         api=api(tampered_model, _accepts_tampered), code=0),
    Case("api-nan-image", "Generator", "a float image holding NaN",
         api=api(lambda e: e.identity,
                 lambda p: _gen(p)(np.full((4, 4, 3), np.nan, np.float32))),
         needles=("NaN or inf",)),
    Case("api-float-huge", "Generator", "a float image holding 1e37 (finite)",
         api=api(lambda e: e.identity,
                 lambda p: _gen(p)(np.full((4, 4, 3), 1e37, np.float32))),
         needles=("values in [0, 1]", "1e+37")),
    Case("api-float16-image", "Generator", "a float16 image",
         api=api(lambda e: e.identity, lambda p: _gen(p)(np.zeros((4, 4, 3), np.float16))),
         needles=("float16",)),
    Case("api-external-data-parent", "Generator", "external data at ../secret.bin",
         api=api(external_data_model("../secret.bin"), _gen),
         needles=("outside the model's folder",)),
    # ---- round two: verification that cannot be forged ----
    Case("verify-golden-replaced", "verify", "the golden file swapped for other samples",
         cmd_model("verify", forged_golden), 2,
         ("golden samples", "model.fp32.golden.npz", "does not match the manifest")),
    Case("verify-golden-zeroed", "verify", "torch outputs zeroed, max_lsb 1e9, manifest kept",
         cmd_model("verify", zeroed_golden(1e9, keep_manifest=True)), 2,
         ("does not match the manifest",)),
    Case("verify-no-manifest", "verify", "a model and golden file without a manifest",
         cmd_model("verify", without_manifest), 2, ("has no manifest", "--no-manifest")),
    Case("verify-no-manifest-opt-out", "verify", "accepted with --no-manifest, and said so",
         cmd_model("verify", without_manifest, "--no-manifest"), 0, check=says_not_vouched),
    Case("verify-tolerance-never-fails", "verify", "--no-manifest, zeroed outputs, max_lsb 1e9",
         cmd_model("verify", zeroed_golden(1e9, keep_manifest=False), "--no-manifest"), 2,
         ("max_lsb = 1000000000.0 that can never fail",)),
    Case("verify-tolerance-nan", "verify", "--no-manifest, a NaN max_lsb",
         cmd_model("verify", zeroed_golden(float("nan"), keep_manifest=False), "--no-manifest"),
         2, ("max_lsb = nan",)),
    Case("verify-manifest-without-golden", "verify", "a manifest that records no golden sha256",
         cmd_model("verify", manifest_without_golden), 2,
         ("records no sha256 for the golden samples",)),
    # ---- files that are not edgegen's ----
    Case("export-keeps-user-temps", "export", "accepted: a user's .notes.tmp in --out is kept",
         user_temp_in_out, 0),
    Case("export-folder-in-use", "export", "another export holds --out",
         lambda e: locked(e.out(), export_args("--precision", "fp32")(e), e), 2,
         ("export folder", "in use by another edgegen process"), check=release_lock),
    Case("train-folder-in-use", "train", "another training holds --out",
         lambda e: locked(e.out(), ["train", "--out", e.out(), *TINY_TRAIN], e), 2,
         ("run folder", "in use by another edgegen process"), check=release_lock),
    Case("bench-json-device", "bench", "accepted: --json to a device (as /dev/null)",
         lambda e: bench_args("--json", str(device_node(e, "null")))(e), 0,
         check=still_special("null", "median_ms")),
    Case("compare-output-device", "compare", "accepted: --output to a device",
         lambda e: compare_args("--sizes", "16", "--output", str(device_node(e, "null")))(e), 0,
         check=still_special("null", "max")),
    Case("compare-output-fifo", "compare", "accepted: --output to a FIFO (as /dev/stdout)",
         lambda e: compare_args("--sizes", "16", "--format", "json", "--output",
                                str(fifo_with_reader(e, "pipe")))(e), 0,
         check=still_special("pipe", "max_lsb")),
    # ---- resource limits and run-time failures ----
    Case("model-fixed-size", "run", "a model exported for 16x16 given a 24x32 photo",
         run_model(fixed_size_model), 2, ("takes only 16x16 inputs", "24x32")),
    Case("model-reshape-fails", "run", "a Reshape to a fixed size fails at run time",
         run_model(reshape_model), 2, ("photo.png", "reshape.onnx failed on a 1x3x24x32 input")),
    Case("bench-size-huge", "bench", "--sizes 60000x60000 (80 GiB of input and output)",
         bench_args("--sizes", "60000x60000"), 2, ("out of memory", "60000x60000")),
    Case("spec-pad-multiple-huge", "run", "spec with pad_multiple 100000",
         run_model(identity_with(spec_with(pad_multiple=100000))), 2,
         ("pad_multiple' must be in 1..1024",)),
    Case("spec-receptive-field-negative", "run", "spec with receptive_field -5",
         run_model(identity_with(spec_with(receptive_field=-5))), 2, ("receptive_field",)),
    Case("spec-value-range-inf", "run", "spec with value_range [0, Infinity]",
         run_model(identity_with(spec_with(value_range=[0.0, float("inf")]))), 2,
         ("value_range' must be finite",)),
    Case("run-threads-huge", "run", "accepted: --threads 10000 is capped, with a note",
         run_model(lambda e: Path(e.identity), "--threads", "10000"), 0, check=threads_capped),
    Case("run-timeout-zero", "run", "--timeout 0",
         run_model(lambda e: Path(e.identity), "--timeout", "0"), 2, ("--timeout",)),
    Case("image-fifo", "run", "a FIFO named photo.png (reading it would block)",
         run_image(fifo("pipe.png")), 2, ("pipe.png is a FIFO",)),
    # ---- output never silently wrong ----
    Case("model-outputs-nan", "run", "a model whose output is NaN",
         run_model(nan_model), 2, ("photo.png", "NaN or inf", "nothing written")),
    Case("image-float-tiff", "run", "accepted: a float32 TIFF in [0, 1]",
         run_image(float_tiff), 0, check=float_kept),
    Case("image-icc-profile", "run", "accepted: a photo with an ICC profile",
         run_image(icc_photo), 0, check=icc_carried),
    Case("compare-max-lsb-nan", "compare", "--max-lsb nan (a limit that cannot fail)",
         compare_args("--max-lsb", "nan"), 2, ("not a finite number",)),
    Case("export-tolerance-nan", "export", "--tolerance fp32.max_lsb=nan",
         export_args("--tolerance", "fp32.max_lsb=nan"), 2, ("fp32.max_lsb=nan",)),
    Case("train-lr-nan", "train", "--lr nan",
         lambda e: ["train", "--lr", "nan", "--out", e.out()], 2, ("not a finite number",)),
    Case("zoo-manifest-escapes", "models", "a shipped manifest whose file is ../../secret.onnx",
         api=api(shipped_root_escape, _shipped), needles=("outside its folder",)),
    # ---- messages that name the real problem ----
    Case("run-dash-file-name", "run", "accepted: a file named -x.png after --",
         dash_named, 0, check=dash_written),
    Case("run-long-file-name", "run", "accepted: a 255-byte file name",
         long_named, 0, check=long_written),
    Case("model-symlink-loop", "run", "a model that is a symlink loop",
         run_model(symlink_loop), 2, ("loop.onnx is a symlink loop",)),
    Case("model-fifo", "run", "a FIFO as the model",
         run_model(fifo("m.onnx")), 2, ("m.onnx is a FIFO",)),
    Case("model-device", "run", "a device (/dev/zero) as the model",
         lambda e: ["run", "--model", "/dev/zero", str(save(e.path("p.png"), photo_crop())),
                    "-o", e.out()], 2, ("/dev/zero is a device",)),
    Case("image-broken-symlink", "run", "an input that is a broken symlink",
         run_image(broken_symlink), 2, ("gone.png is a broken symlink",)),
    Case("run-glob-covers-output", "run", "accepted: a rerun whose glob covers -o",
         glob_over_output, 0, check=glob_rerun_skipped),
    Case("api-threads-over-max", "Generator", "Generator(threads=100000)",
         api=api(lambda e: e.identity, lambda p: _gen(p, threads=100000)),
         needles=("threads must be <= 1024",)),
    Case("api-nan-output", "Generator", "a model whose output is NaN",
         api=api(nan_model, lambda p: _gen(p)(photo_crop())), needles=("NaN or inf",)),
]  # fmt: skip

# The cases whose path depends on who runs them (file modes, owners, special files, locks,
# temporaries, paths out of a folder): the unprivileged rerun (test_limits) repeats only these.
# The rest parse bytes or options, which no privilege changes; they run once, as root.
PRIVILEGE_SENSITIVE = frozenset({
    "image-folder-as-file", "model-missing", "model-is-a-folder",
    "model-external-data-parent", "model-external-data-absolute", "model-external-data-symlink",
    "export-checkpoint-missing", "export-folder-without-checkpoint", "export-out-is-a-file",
    "export-calib-missing", "train-resume-missing", "train-out-is-a-file",
    "train-photos-not-fetched", "compare-images-empty-folder", "compare-output-is-a-folder",
    "bench-json-under-a-file", "web-out-holds-other-files", "serve-folder-missing",
    "run-input-missing", "run-out-is-input-folder", "run-out-inside-input-folder",
    "run-out-overwrites-input", "run-out-is-a-file", "run-out-unwritable", "run-output-exists",
    "run-output-is-a-folder", "api-external-data-parent", "export-keeps-user-temps",
    "export-folder-in-use", "train-folder-in-use", "bench-json-device", "compare-output-device",
    "compare-output-fifo", "image-fifo", "zoo-manifest-escapes", "run-dash-file-name",
    "run-long-file-name", "model-symlink-loop", "model-fifo", "model-device",
    "image-broken-symlink", "run-glob-covers-output",
})  # fmt: skip
