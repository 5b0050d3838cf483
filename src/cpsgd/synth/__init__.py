"""Synthetic scenes with exact ground truth (poses, intrinsics, masks, depth).

    clip = make_scene(SceneConfig(traj="orbit", objects=2))
    write_clip(clip, "out/")                 # frames/, masks/, poses.txt, intrinsics.json
    reprojection_check(clip).colour_error    # proof that the poses are exact
"""

from cpsgd.synth.check import ReprojectionReport, reprojection_check, rigid_flow
from cpsgd.synth.cli import add_synth_command
from cpsgd.synth.io import write_clip
from cpsgd.synth.scene import SceneConfig, SyntheticClip, make_scene

__all__ = [
    "ReprojectionReport",
    "SceneConfig",
    "SyntheticClip",
    "add_synth_command",
    "make_scene",
    "reprojection_check",
    "rigid_flow",
    "write_clip",
]
