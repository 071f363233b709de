import json

import pytest

from edgegen.runtime.spec import ModelSpec, Provenance, SpecError


def make_spec(**changes):
    base = dict(
        task="sr",
        scale=2,
        arch_params={"channels": 8, "blocks": 1},
        receptive_field=13,
        degradation={"kind": "bicubic_downscale", "scale": 2},
        provenance=Provenance(checkpoint_sha256="ab" * 32, step=10, metrics={"psnr": 31.5}),
    )
    base.update(changes)
    return ModelSpec(**base)


def test_json_round_trip_keeps_every_field():
    spec = make_spec()
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec
    assert again.value_range == (0.0, 1.0)  # JSON list back to the typed tuple
    assert again.provenance.metrics == {"psnr": 31.5}


def test_unknown_fields_are_named():
    data = make_spec().to_dict()
    data["colour"] = "RGB"
    data["provenance"]["who"] = "me"
    with pytest.raises(SpecError, match="unknown field.*colour"):
        ModelSpec.from_dict(data)
    del data["colour"]
    with pytest.raises(SpecError, match=r"spec.provenance has unknown field.*who"):
        ModelSpec.from_dict(data)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("scale", "2", "spec.scale must be an integer"),
        ("scale", True, "spec.scale must be an integer"),
        ("value_range", [0, 1, 2], "spec.value_range must be a list of 2"),
        ("value_range", ["a", 1], r"spec.value_range\[0\] must be a number"),
        ("arch_params", [1], "spec.arch_params must be an object"),
        ("task", 3, "spec.task must be a string"),
        ("receptive_field", "big", "spec.receptive_field has the wrong type"),
    ],
)
def test_ill_typed_fields_are_named(field, value, message):
    data = make_spec().to_dict()
    data[field] = value
    with pytest.raises(SpecError, match=message):
        ModelSpec.from_dict(data)


def test_nested_metric_types_are_checked():
    data = make_spec().to_dict()
    data["provenance"]["metrics"] = {"psnr": "high"}
    with pytest.raises(SpecError, match=r"spec.provenance.metrics.psnr must be a number"):
        ModelSpec.from_dict(data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "deblur"}, "task"),
        ({"scale": 5}, "scale"),
        ({"task": "denoise", "scale": 2}, "scale"),
        ({"in_channels": 2}, "in_channels"),
        ({"color_order": "GRAY"}, "color_order"),
        ({"value_range": (1.0, 0.0)}, "value_range"),
        ({"pad_multiple": 0}, "pad_multiple"),
        ({"precision": "int4"}, "precision"),
        ({"version": 99}, "newer"),
    ],
)
def test_impossible_values_are_refused(changes, message):
    with pytest.raises(SpecError, match=message):
        make_spec(**changes)


def test_missing_required_field_and_bad_json():
    data = make_spec().to_dict()
    del data["task"]
    with pytest.raises(SpecError, match="missing field.*task"):
        ModelSpec.from_dict(data)
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.from_json("{")
    with pytest.raises(SpecError, match="must be a JSON object"):
        ModelSpec.from_json(json.dumps([1, 2]))


def test_docstring_degradations_build_and_bad_ones_list_the_kinds():
    for described in (
        {"kind": "gaussian_noise", "sigma": 25.0},
        {"kind": "gaussian_noise", "sigma": [5, 50]},
        {"kind": "jpeg", "quality": 30},
    ):
        assert ModelSpec(task="denoise", degradation=described).degradation == described
    message = "gaussian_noise \\(sigma\\), bicubic_downscale \\(scale\\), jpeg \\(quality\\)"
    with pytest.raises(SpecError, match=message):
        ModelSpec(task="denoise", degradation={"sigma": 25.0})
    with pytest.raises(SpecError, match="needs 'sigma'"):
        ModelSpec(task="denoise", degradation={"kind": "gaussian_noise", "sigma": "high"})
    with pytest.raises(SpecError, match="bicubic_downscale scale"):
        ModelSpec(task="sr", scale=2, degradation={"kind": "bicubic_downscale", "scale": 7})


def test_global_field_and_tiled_error_round_trip_and_are_typed():
    spec = make_spec(global_field=True, tiled_max_lsb=12.5, receptive_field=None)
    assert ModelSpec.from_json(spec.to_json()) == spec
    data = spec.to_dict()
    data["global_field"] = "yes"
    with pytest.raises(SpecError, match="global_field must be true or false"):
        ModelSpec.from_dict(data)
    with pytest.raises(SpecError, match="tiled_max_lsb"):
        make_spec(tiled_max_lsb=-1.0)
