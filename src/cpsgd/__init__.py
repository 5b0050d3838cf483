"""cpsgd: extreme video compression guided by camera poses and segmentation masks."""

__version__ = "0.1.0"
