import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.errors import ConfigError
from synthreid.scene.config import PRESET_NAMES, load_config
from synthreid.scene.sampling import sample_character, sample_images


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_presets_load_and_follow_table_3_1(name):
    config = load_config(name)
    assert (config.characters, config.images_per_character) == (1500, 10)


def test_presets_differ_as_the_thesis_describes():
    one, two, three, four = (load_config(n) for n in PRESET_NAMES)
    assert one.room.wall_colour is not None and two.room.wall_colour is None
    assert one.clothes.texture_probability == 0 < two.clothes.texture_probability
    assert one.hair.styles == ["none"] and len(three.hair.styles) > 1
    assert four.room.kind == "cubemap" and four.accessories.probabilities


def test_user_yaml_extends_a_preset(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: II\nname: mine\ncamera: {radius_m: 4.0}\n")
    config = load_config(path)
    assert config.camera.radius_m == 4.0
    assert config.clothes.texture_probability == load_config("II").clothes.texture_probability


BAD = [
    ("camera: {theta_deg: [80, 40]}", "camera.theta_deg"),
    ("camera: {radius_m: 0}", "camera.radius_m"),
    ("camera: {radius_m: -2}", "camera.radius_m"),
    ("clothes: {texture_families: [stripes, paisley]}", "clothes.texture_families"),
    ("room: {kind: cubemap, cubemaps: [/no/such/folder]}", "room"),
    ("hair: {styles: [mohawk]}", "hair.styles"),
    ("characters: many", "characters"),
]


@pytest.mark.parametrize("override, field", BAD)
def test_bad_values_stop_with_one_line_naming_the_field(tmp_path, override, field):
    path = tmp_path / "bad.yaml"
    path.write_text(f"extends: I\nname: bad\n{override}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "\n" not in message and field in message and str(path) in message


def test_missing_cubemap_folder_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"extends: IV\nname: bad\nroom: {{cubemaps: ['{tmp_path / 'gone'}']}}\n")
    with pytest.raises(ConfigError, match="gone does not exist"):
        load_config(path)


def test_cli_reports_a_bad_preset_in_one_line_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("extends: I\nname: bad\ncamera: {theta_deg: [80, 40]}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["preview", str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert "theta_deg" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_unknown_preset_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such preset"):
        load_config("V")
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_same_seed_same_character_and_different_seeds_differ():
    config = load_config("IV")
    a, b = sample_character(config, 5, 42), sample_character(config, 5, 42)
    assert a == b and sample_images(config, a, 4) == sample_images(config, b, 4)
    others = {sample_character(config, 5, seed).model_dump_json() for seed in range(20)}
    assert len(others) == 20
    assert sample_character(config, 6, 42) != a


def test_specs_round_trip_through_json():
    config = load_config("IV")
    character = sample_character(config, 0, 1)
    again = type(character).model_validate(json.loads(character.model_dump_json()))
    assert again == character


def test_sampled_attributes_respect_the_preset():
    config = load_config("III")
    for cid in range(200):
        c = sample_character(config, cid, 0)
        body = c.body
        heights = config.body.height_m_female if body.female else config.body.height_m_male
        assert heights[0] <= body.height_m <= heights[1]
        assert config.body.age_years[0] <= body.age_years <= config.body.age_years[1]
        assert c.hair.style in config.hair.styles
        for garment in c.garments:
            if garment.texture:
                assert garment.texture.family in config.clothes.texture_families
    one = load_config("I")
    for cid in range(50):
        c = sample_character(one, cid, 0)
        assert [g.kind for g in c.garments] == ["shirt", "pants"]
        assert all(g.texture is None for g in c.garments) and not c.accessories


def test_the_shipped_lever_files_load_and_all_turns_every_lever_on(tmp_path, monkeypatch):
    import shutil

    from PIL import Image

    levers = tmp_path / "levers"
    shutil.copytree(Path(__file__).resolve().parents[1] / "experiments" / "levers", levers)
    for band in ("upper", "lower"):  # the photo-texture library the files name, made small
        (levers / "textures" / "prid450s" / band).mkdir(parents=True)
        Image.new("RGB", (8, 8), (200, 40, 40)).save(
            levers / "textures" / "prid450s" / band / "0001.png")
    monkeypatch.chdir(levers)  # the library's folder is relative to where the user runs
    configs = {p.stem: load_config(str(p)) for p in sorted(levers.glob("*.yaml"))}
    assert {"IV-effects", "IV-lights", "IV-occluders", "IV-crowd", "IV-photos", "IV-all"} <= set(
        configs)
    every = configs["IV-all"]
    assert None not in (every.camera_effects, every.lights, every.occluders, every.crowd,
                        every.clothes.photo_textures)
    for name, config in configs.items():
        assert config.name == name
