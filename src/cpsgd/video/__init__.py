"""Video input and output: any FFmpeg-readable file (PyAV), .y4m, raw .yuv, or a folder of frames."""

from cpsgd.video.reader import RawFormat, VideoSource, open_video
from cpsgd.video.writer import VideoWriter, open_writer

__all__ = ["RawFormat", "VideoSource", "open_video", "VideoWriter", "open_writer"]
