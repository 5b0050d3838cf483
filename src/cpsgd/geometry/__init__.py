"""The scene-geometry side channel: a coarse inverse-depth grid fitted by the encoder, its codecs,
and the background mosaic sent in place of the plain intra frame."""

from cpsgd.geometry.codec import GEOMETRY_CODECS, GeometryCodec, Grid8Codec
from cpsgd.geometry.fit import GeometryFitConfig, fit_geometry
from cpsgd.geometry.model import MosaicLayout, SceneGeometry
from cpsgd.geometry.mosaic import Mosaic, MosaicConfig, build_mosaic

__all__ = [
    "GEOMETRY_CODECS",
    "GeometryCodec",
    "GeometryFitConfig",
    "Grid8Codec",
    "Mosaic",
    "MosaicConfig",
    "MosaicLayout",
    "SceneGeometry",
    "build_mosaic",
    "fit_geometry",
]
