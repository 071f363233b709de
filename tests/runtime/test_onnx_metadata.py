"""Reading a model's metadata_props from the file, without onnx or a session."""

from __future__ import annotations

import onnx
from tinymodels import exported

from edgegen.runtime.onnx_metadata import read_metadata
from edgegen.runtime.spec import METADATA_KEY, ModelSpec


def test_metadata_matches_what_onnx_reads():
    for precision in ("fp32", "fp16", "int8"):
        path = exported(("fp32", "fp16", "int8")) / f"model.{precision}.onnx"
        expected = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        found = read_metadata(path)
        assert found == expected and METADATA_KEY in found
        assert ModelSpec.from_json(found[METADATA_KEY]).precision == precision


def test_a_file_that_is_not_a_protobuf_model_gives_none(tmp_path):
    path = exported(("fp32", "fp16", "int8")) / "model.fp32.onnx"
    data = path.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])  # a length that runs past the end
    assert read_metadata(cut) is None
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x0b" * 64)  # wire type 3 (a group): not ONNX
    assert read_metadata(junk) is None
    assert read_metadata(tmp_path / "missing.onnx") is None
    ort = tmp_path / "model.ort"
    ort.write_bytes(data)  # the suffix says flatbuffer: not parsed as protobuf
    assert read_metadata(ort) is None


def test_a_model_without_metadata_gives_an_empty_dict(tmp_path):
    path = exported(("fp32", "fp16", "int8")) / "model.fp32.onnx"
    model = onnx.load(str(path))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    assert read_metadata(bare) == {}
