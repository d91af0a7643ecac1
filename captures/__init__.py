"""Capture files in and out: readers yield PacketBatch, writers take frames."""

from .batch import PacketBatch
from .errors import CaptureError
from .reader import CaptureInfo, CaptureReader, InterfaceInfo, open_capture
from .writer import PcapWriter, write_pcap, write_pcapng

__all__ = [
    "PacketBatch", "open_capture", "CaptureReader", "CaptureInfo", "InterfaceInfo",
    "CaptureError", "write_pcap", "write_pcapng", "PcapWriter",
]
