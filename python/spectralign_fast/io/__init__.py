"""Files in and out: images, tile stores, OME-Zarr, TIFF and JSON.

Every write goes through ``io.atomic`` (built under a temporary name and
renamed when complete); file kinds and output dtypes are listed once in
``io.formats``.
"""
from __future__ import annotations

from .images import read_image, write_image
from .jsonfile import write_json
from .omezarr import OmeZarrWriter, read_ome_zarr, write_ome_zarr
from .pyramid import chunk_grid, downsample
from .tiff import tiff_needs_bigtiff, write_tiff

__all__ = ["OmeZarrWriter", "chunk_grid", "downsample", "read_image", "read_ome_zarr", "tiff_needs_bigtiff",
           "write_image", "write_json", "write_ome_zarr", "write_tiff"]
