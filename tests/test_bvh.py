"""Motion capture: a CMU-style BVH (T-pose, y up, facing +z) retargeted onto anny's rig."""

import numpy as np
import pytest

from synthreid.body.bvh import parse_bvh, retarget
from synthreid.errors import ConfigError
from synthreid.scene.config import check_assets, config_from_dict, load_config
from synthreid.scene.sampling import sample_character
from synthreid.scene.spec import BodySpec

ZYX = "CHANNELS 3 Zrotation Yrotation Xrotation"


def limb(names_offsets, end):
    text, close = "", ""
    for name, offset in names_offsets:
        text += f"JOINT {name}\n{{\nOFFSET {offset}\n{ZYX}\n"
        close += "}\n"
    return text + f"End Site\n{{\nOFFSET {end}\n}}\n" + close


def cmu_like_bvh(frames: list[dict[str, tuple[float, float, float]]]) -> str:
    """The CMU (cgspeed) hierarchy with made-up T-pose offsets; `frames` give (z, y, x)
    Euler degrees per joint, zero elsewhere."""
    legs = "".join(limb([(f"{s}HipJoint", "0 0 0"), (f"{side}UpLeg", f"{x} -6 0"),
                         (f"{side}Leg", "0 -42 0"), (f"{side}Foot", "0 -40 0"),
                         (f"{side}ToeBase", "0 -5 12")], "0 0 5")
                   for s, side, x in (("L", "Left", 9), ("R", "Right", -9)))
    arms = "".join(limb([(f"{side}Shoulder", f"{x / 5} 10 0"), (f"{side}Arm", f"{x} 0 0"),
                         (f"{side}ForeArm", f"{2 * x} 0 0"), (f"{side}Hand", f"{1.6 * x} 0 0")],
                        f"{x / 2} 0 0")
                   for side, x in (("Left", 15), ("Right", -15)))
    spine = ("JOINT LowerBack\n{\nOFFSET 0 5 0\n" + ZYX + "\nJOINT Spine\n{\nOFFSET 0 12 0\n" + ZYX
             + "\nJOINT Spine1\n{\nOFFSET 0 12 0\n" + ZYX + "\n" + arms
             + limb([("Neck", "0 14 0"), ("Neck1", "0 5 0"), ("Head", "0 5 0")], "0 15 0")
             + "}\n}\n}\n")
    hierarchy = ("HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\n"
                 "CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation\n"
                 + legs + spine + "}\n")
    motion = parse_bvh_text_joint_order(hierarchy)
    rows = []
    for frame in frames:
        row = [0.0, 90.0, 0.0]  # root position
        for joint in motion:
            row += list(frame.get(joint, (0.0, 0.0, 0.0)))
        rows.append(" ".join(f"{v:g}" for v in row))
    return hierarchy + f"MOTION\nFrames: {len(frames)}\nFrame Time: 0.0083333\n" + "\n".join(rows)


def parse_bvh_text_joint_order(hierarchy: str) -> list[str]:
    tokens = hierarchy.split()
    return [tokens[i + 1] for i, t in enumerate(tokens) if t in ("ROOT", "JOINT")]


@pytest.fixture(scope="module")
def posed_heads(body_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("bvh") / "walk.bvh"
    path.write_text(cmu_like_bvh([
        {},  # the T-pose
        {"LeftUpLeg": (0, 0, -90)},  # thigh raised forward
        {"LeftForeArm": (90, 0, 0)},  # forearm turned up
        {"Hips": (0, 90, 0)},  # the whole body turned: the heading is the caller's
    ]))
    motion = parse_bvh(path)
    shaped = body_model.shape(BodySpec(female=False, age_years=30, height_m=1.8, muscle=0.5,
                                       weight=0.5, proportions=0.5, skin_tone=(0.8, 0.6, 0.5)))
    identity = np.tile(np.eye(4), (len(body_model.bone_labels), 1, 1))
    reference = (body_model.bone_transforms(shaped, identity) @ shaped.rest_bone_poses)[:, :3, 3]
    heads = []
    for frame in range(len(motion.frames)):
        deltas = retarget(motion, frame, body_model.bone_labels, body_model.bone_parents, reference)
        transforms = body_model.bone_transforms(shaped, deltas)
        heads.append((transforms @ shaped.rest_bone_poses)[:, :3, 3])
    return path, heads, body_model.bone


def test_t_pose_puts_arms_out_level(posed_heads):
    _, heads, bone = posed_heads
    shoulder, elbow, wrist = (heads[0][bone(b)] for b in
                              ("upperarm01.L", "lowerarm01.L", "wrist.L"))
    assert wrist[2] == pytest.approx(shoulder[2], abs=0.05)  # level, not anny's A-pose
    assert wrist[0] > elbow[0] + 0.15 > shoulder[0] + 0.3  # out to the body's left (+x)
    right = heads[0][bone("wrist.R")]
    assert right[0] < -0.5


def test_a_raised_thigh_points_forward(posed_heads):
    _, heads, bone = posed_heads
    hip, knee = heads[1][bone("upperleg01.L")], heads[1][bone("lowerleg01.L")]
    assert knee[1] < hip[1] - 0.3  # forward is -y for anny
    assert knee[2] == pytest.approx(hip[2], abs=0.1)
    other_knee, other_hip = heads[1][bone("lowerleg01.R")], heads[1][bone("upperleg01.R")]
    assert other_knee[2] < other_hip[2] - 0.3  # the other leg still hangs


def test_a_turned_forearm_points_up(posed_heads):
    _, heads, bone = posed_heads
    elbow, wrist = heads[2][bone("lowerarm01.L")], heads[2][bone("wrist.L")]
    assert wrist[2] > elbow[2] + 0.2


def test_the_root_yaw_is_left_to_the_heading(posed_heads):
    _, heads, _ = posed_heads
    np.testing.assert_allclose(heads[3], heads[0], atol=1e-6)


def test_presets_take_a_bvh_folder_and_characters_move_with_it(posed_heads, tmp_path, body_model):
    from synthreid.body.character import CharacterGeometry

    path, _, _ = posed_heads
    data = load_config("I").model_dump()
    data["gait"]["bvh_folder"] = str(path.parent)
    config = config_from_dict(data)
    spec = sample_character(config, 0, 0)
    assert spec.gait.motion == str(path.resolve())
    geometry = CharacterGeometry(body_model, spec)
    first, second = geometry.pose(0.0, 0.0), geometry.pose(0.3, 0.0)  # frames 0 and 1
    assert not np.allclose(first.vertices["body"], second.vertices["body"])
    data["gait"]["bvh_folder"] = str(tmp_path)
    with pytest.raises(ConfigError, match="gait.bvh_folder: folder .* holds no .bvh files"):
        check_assets(config_from_dict(data))


def test_a_broken_bvh_file_is_named(tmp_path):
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\nOFFSET 0 0\n")
    with pytest.raises(ConfigError, match="bad.bvh: not a valid BVH file"):
        parse_bvh(bad)
