import pytest

from edgegen.runtime.errors import EdgegenError
from edgegen.train.config import TrainConfig, build_config, load_preset, preset_names


def test_packaged_presets_load_and_validate():
    assert {"denoise-small", "sr2-small", "seed"} <= set(preset_names())
    for name in preset_names():
        build_config(name, {}).validate()


def test_precedence_defaults_then_preset_then_options():
    cfg = build_config("seed", {"lr": 5e-4})
    assert cfg.lr == 5e-4  # the option wins over the preset
    assert cfg.loss == "mse" and cfg.act_after_add  # from the preset
    assert cfg.patch == TrainConfig().patch  # untouched default
    assert cfg.preset == "seed"


def test_seed_network_is_expressible_from_options():
    cfg = build_config(
        None,
        {
            "act_after_add": True,
            "loss": "mse",
            "optimizer": "adam",
            "lr": 1e-3,
            "schedule": "constant",
            "warmup": 0,
        },
    )
    assert (cfg.act_after_add, cfg.loss, cfg.optimizer, cfg.lr) == (True, "mse", "adam", 1e-3)


def test_sigma_accepts_a_number_or_a_range():
    assert build_config(None, {"sigma": "15"}).sigma == 15.0
    assert build_config(None, {"sigma": "5,50"}).sigma == (5.0, 50.0)
    with pytest.raises(EdgegenError, match="--sigma must be a number or low,high"):
        build_config(None, {"sigma": "a"})
    with pytest.raises(EdgegenError, match="--sigma must be >= 0"):
        build_config(None, {"sigma": "-1"})


def test_preset_file_and_its_errors(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('task = "sr"\nscale = 3\npatch = 48\n')
    cfg = build_config(str(good), {})
    assert (cfg.task, cfg.effective_scale, cfg.patch) == ("sr", 3, 48)

    bad = tmp_path / "bad.toml"
    bad.write_text("task = 'sr\n")
    with pytest.raises(EdgegenError, match="not valid TOML"):
        load_preset(str(bad))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("learning_rate = 1\n")
    with pytest.raises(EdgegenError, match="unknown option.*learning_rate"):
        load_preset(str(unknown))
    typed = tmp_path / "typed.toml"
    typed.write_text('batch = "big"\n')
    with pytest.raises(EdgegenError, match="batch must be an integer"):
        load_preset(str(typed))
    with pytest.raises(EdgegenError, match="unknown preset 'nope'"):
        load_preset("nope")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task": "deblur"}, "unknown task 'deblur'"),
        ({"arch": "huge"}, "unknown arch 'huge'"),
        ({"task": "sr", "scale": 5}, "--scale must be 2, 3 or 4"),
        ({"scale": 2}, "--scale applies to task sr only"),
        ({"task": "sr", "scale": 3, "patch": 64}, "multiple of the scale 3"),
        ({"quality": "0"}, "--quality must be >= 1"),
        ({"quality": "101"}, "--quality must be <= 100"),
        ({"steps": 10, "minutes": 1.0}, "not both"),
        ({"batch": 0}, "--batch must be > 0"),
    ],
)
def test_impossible_settings_are_refused(options, message):
    with pytest.raises(EdgegenError, match=message):
        build_config(None, options)
