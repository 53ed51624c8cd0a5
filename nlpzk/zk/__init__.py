"""Every kazoo call lives in this package: connection, znode layout, registry, leases, barriers, servers."""

from . import paths
from .client import ConnectionWatch, connect

__all__ = ["paths", "connect", "ConnectionWatch"]
