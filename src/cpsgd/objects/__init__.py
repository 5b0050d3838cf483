"""The object motion side channel: per object and frame, an affine map fitted by the encoder on the
source frames' texture, coded compactly, and used by the warp generator to carry each object's
texture (the masks still decide where the object is drawn)."""

from cpsgd.objects.codec import OBJECT_MOTION_CODECS, ObjectMotionCodec, Points3Codec
from cpsgd.objects.fit import ObjectFitConfig, fit_object_motion
from cpsgd.objects.model import MAX_OBJECTS, ObjectMotion, object_labels, reference_points

__all__ = [
    "MAX_OBJECTS",
    "OBJECT_MOTION_CODECS",
    "ObjectFitConfig",
    "ObjectMotion",
    "ObjectMotionCodec",
    "Points3Codec",
    "fit_object_motion",
    "object_labels",
    "reference_points",
]
