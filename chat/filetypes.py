"""What a file really is, from its bytes (docs/attachments.md): never from its name or the
Content-Type a client sends.

PNG, JPEG, GIF and WebP images and PDF documents are recognised by their signatures and a
walk through their structure (PNG's chunks with their CRCs, JPEG's segments, GIF's trailer,
WebP's RIFF length, PDF's header and end marker); an image's width and height are read
from its header. Anything else, or a file of a known kind that does not hold together (an
HTML page renamed to .png, a PNG with a page appended), is refused. Pillow is not a
dependency of the project: these checks are what its openers check first, without decoding
pixels.
"""

from __future__ import annotations

import re
import struct
import unicodedata
import zlib
from dataclasses import dataclass
from enum import StrEnum


class FileType(StrEnum):
    """A kind of file the chat takes; the value is how a site lists it."""

    PNG = "png"
    JPEG = "jpeg"
    GIF = "gif"
    WEBP = "webp"
    PDF = "pdf"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]

    @property
    def extension(self) -> str:
        return ".jpg" if self is FileType.JPEG else f".{self.value}"

    @property
    def is_image(self) -> bool:
        return self is not FileType.PDF

    @property
    def label(self) -> str:
        return "WebP" if self is FileType.WEBP else self.name


_CONTENT_TYPES = {
    FileType.PNG: "image/png",
    FileType.JPEG: "image/jpeg",
    FileType.GIF: "image/gif",
    FileType.WEBP: "image/webp",
    FileType.PDF: "application/pdf",
}
ALL_TYPES = tuple(FileType)
MAX_PIXELS_SIDE = 10000  # wider or taller images are refused (decompression bombs)


@dataclass(frozen=True, slots=True)
class Detected:
    type: FileType
    width: int | None = None
    height: int | None = None


class NotRecognised(ValueError):
    """The bytes are none of the kinds the chat takes, or do not hold together."""


def detect(data: bytes) -> Detected:
    """The file's type (and an image's size) from its bytes; NotRecognised otherwise."""
    for signature, check in _CHECKS:
        if data.startswith(signature):
            return check(data)
    raise NotRecognised("not a known file type")


# --- PNG -----------------------------------------------------------------------------

_PNG = b"\x89PNG\r\n\x1a\n"


def _png(data: bytes) -> Detected:
    """Every chunk's length and CRC, IHDR first, IEND last and nothing after it."""
    at, first, ended = len(_PNG), True, False
    width = height = 0
    while at < len(data):
        if ended or at + 12 > len(data):
            raise NotRecognised("PNG: bytes after the end, or a cut chunk")
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        body_end = at + 8 + length
        if length > 0x7FFFFFFF or body_end + 4 > len(data):
            raise NotRecognised("PNG: a chunk runs past the end")
        (crc,) = struct.unpack(">I", data[body_end : body_end + 4])
        if zlib.crc32(data[at + 4 : body_end]) != crc:
            raise NotRecognised("PNG: a chunk's CRC is wrong")
        if first:
            if kind != b"IHDR" or length != 13:
                raise NotRecognised("PNG: no IHDR first")
            width, height = struct.unpack(">II", data[at + 8 : at + 16])
            first = False
        ended = kind == b"IEND"
        at = body_end + 4
    if not ended:
        raise NotRecognised("PNG: no IEND")
    return _sized(FileType.PNG, width, height)


# --- JPEG ----------------------------------------------------------------------------

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> Detected:
    """The segments up to the frame header (the size), and the end-of-image marker last."""
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise NotRecognised("JPEG: no end of image")
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise NotRecognised("JPEG: not a marker")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if length < 2 or at + 2 + length > len(data):
            raise NotRecognised("JPEG: a segment runs past the end")
        if marker in _SOF:
            if length < 7:
                raise NotRecognised("JPEG: a short frame header")
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return _sized(FileType.JPEG, width, height)
        if marker in (0xDA, 0xD9):  # scan or end before any frame header
            break
        at += 2 + length
    raise NotRecognised("JPEG: no frame header")


# --- GIF -----------------------------------------------------------------------------


def _gif(data: bytes) -> Detected:
    if len(data) < 14 or not data.endswith(b"\x3b"):
        raise NotRecognised("GIF: no trailer")
    width, height = struct.unpack("<HH", data[6:10])
    return _sized(FileType.GIF, width, height)


# --- WebP ----------------------------------------------------------------------------


def _webp(data: bytes) -> Detected:
    if len(data) < 30 or data[8:12] != b"WEBP":
        raise NotRecognised("WebP: not a WebP file")
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size + 8 != len(data) and riff_size + 9 != len(data):  # + a padding byte
        raise NotRecognised("WebP: its length is wrong")
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8L":
        if data[20] != 0x2F:
            raise NotRecognised("WebP: a lossless image without its signature")
        bits = int.from_bytes(data[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise NotRecognised("WebP: a lossy image without its start code")
        width, height = struct.unpack("<HH", data[26:30])
        width, height = width & 0x3FFF, height & 0x3FFF
    else:
        raise NotRecognised("WebP: an unknown first chunk")
    return _sized(FileType.WEBP, width, height)


# --- PDF -----------------------------------------------------------------------------


def _pdf(data: bytes) -> Detected:
    """`%PDF-1.x` first, `%%EOF` within the last kilobyte (where every writer puts it)."""
    if not re.match(rb"%PDF-\d\.\d", data[:8]) or b"%%EOF" not in data[-1024:]:
        raise NotRecognised("PDF: no header or no end marker")
    return Detected(FileType.PDF)


def _sized(kind: FileType, width: int, height: int) -> Detected:
    if not (0 < width <= MAX_PIXELS_SIDE and 0 < height <= MAX_PIXELS_SIDE):
        raise ImageTooLarge(width, height) if width and height else NotRecognised("no size")
    return Detected(kind, width, height)


class ImageTooLarge(ValueError):
    """An image wider or taller than MAX_PIXELS_SIDE."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(f"{width} x {height} pixels")
        self.width, self.height = width, height


_CHECKS = (
    (_PNG, _png),
    (b"\xff\xd8\xff", _jpeg),
    (b"GIF87a", _gif),
    (b"GIF89a", _gif),
    (b"RIFF", _webp),
    (b"%PDF-", _pdf),
)


# --- Names ---------------------------------------------------------------------------

NAME_CHARS = 100
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*;%`$\'\u202a-\u202e\u2066-\u2069]')


def safe_name(raw: str, kind: FileType) -> str:
    """A name to show and to download under: the last path part of what the client sent,
    without control, quote, path, shell or bidirectional-override characters, at most
    NAME_CHARS long, and always with the extension of what the file really is."""
    name = unicodedata.normalize("NFKC", raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = " ".join(_UNSAFE.sub("", name).split()).strip(" .")
    stem = name.rsplit(".", 1)[0].strip(" .") if "." in name else name
    stem = stem[: NAME_CHARS - len(kind.extension)].strip(" .") or "attachment"
    return stem + kind.extension
