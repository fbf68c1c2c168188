"""Files in and out: images, tile stores, OME-Zarr, TIFF, JSON, NIfTI volumes and
affine transform files (ITK ``.tfm``/``.mat``, plain matrices), displacement fields (ANTs/ITK
warp NIfTI), multi-channel OME-Zarr/OME-TIFF (``write_channels``/``read_channels``), Fiji
``TileConfiguration.txt`` files, multi-position microscope files (``read_slide``: stage
positions, pixel size, channels) and the illumination (flat field) of their tiles.

``read_image``/``write_image`` here are the plain 2-D image readers (arrays
only); ``read_volume``/``write_volume`` are ``io.volumes.read_image`` and
``io.volumes.write_image``: an image with its grid-to-world matrix (NIfTI
volumes, 2-D TIFF/PNG/JPEG).

Every write goes through ``io.atomic`` (built under a temporary name and
renamed when complete); file kinds and output dtypes are listed once in
``io.formats``.
"""
from __future__ import annotations

from .channels import ChannelImage, read_channels, write_channels
from .displacement_fields import read_displacement_field, write_ants_transforms, write_displacement_field
from .illumination import Illumination, estimate_illumination, refine_illumination
from .images import read_image, write_image
from .jsonfile import write_json
from .omezarr import OmeZarrWriter, read_ome_zarr, write_ome_zarr
from .pyramid import chunk_grid, downsample
from .slides import Slide, configuration_tiles, read_slide
from .tiff import tiff_needs_bigtiff, write_tiff
from .tileconfig import TileConfiguration, TileEntry, read_tile_configuration, write_tile_configuration
from .transform_files import read_affine, write_affine
from .volumes import read_image as read_volume, write_image as write_volume

__all__ = ["ChannelImage", "Illumination", "OmeZarrWriter", "Slide", "TileConfiguration", "TileEntry", "chunk_grid",
           "configuration_tiles", "downsample", "estimate_illumination", "read_slide", "refine_illumination",
           "read_affine", "read_channels", "read_displacement_field", "read_image", "read_ome_zarr",
           "read_tile_configuration", "read_volume", "tiff_needs_bigtiff", "write_affine",
           "write_ants_transforms", "write_channels", "write_displacement_field", "write_image", "write_json",
           "write_ome_zarr", "write_tiff", "write_tile_configuration", "write_volume"]
