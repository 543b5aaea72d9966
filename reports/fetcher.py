"""A WeasyPrint URL fetcher that lets a report load only what it carries inline.

Report HTML is built from data that users supplied (feature names, dataset
descriptions, a data subject's reference). If WeasyPrint's default fetcher were
used, a value such as ``<img src="file:///etc/passwd">`` or a CSS ``url()`` that
names an internal address would read local files or reach the network from the
worker (server-side request forgery). So every URL is refused except ``data:``
URLs of a few image and font types, with a size cap. WeasyPrint catches the
error, logs a warning and renders the document without that resource.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_to_bytes

from weasyprint.urls import URLFetcher, URLFetcherResponse

# Charts are small SVGs; a logo may be a PNG. Fonts are listed so that a
# template could embed one, though the base template uses system fonts.
ALLOWED_DATA_TYPES = frozenset(
    {
        "image/svg+xml",
        "image/png",
        "font/woff",
        "font/woff2",
        "font/ttf",
        "font/otf",
        "font/sfnt",
        "application/font-woff",
    }
)
# Decoded size; a chart is a few KiB, so 2 MiB is generous and still stops a
# runaway value from ballooning memory in the render worker.
MAX_DATA_BYTES = 2 * 1024 * 1024
# A small PNG can decompress to gigabytes ("PNG bomb"); no report needs more.
MAX_PNG_PIXELS = 4000 * 4000
# WeasyPrint hands bytes that are not valid SVG to Pillow, whatever the
# declared type, and Pillow sniffs the format: bytes labelled image/png could be
# EPS, which Pillow renders through Ghostscript. So the bytes must match the
# declared type before WeasyPrint sees them.
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "font/woff": (b"wOFF",),
    "application/font-woff": (b"wOFF",),
    "font/woff2": (b"wOF2",),
    "font/ttf": (b"\x00\x01\x00\x00", b"true"),
    "font/otf": (b"OTTO",),
    "font/sfnt": (b"\x00\x01\x00\x00", b"true", b"OTTO"),
}


class BlockedURLError(ValueError):
    """A resource URL that a report may not load."""


def parse_data_url(url: str, *, max_bytes: int = MAX_DATA_BYTES) -> tuple[str, bytes]:
    """Decode a ``data:`` URL into (media type, bytes), enforcing type and size."""
    if url[:5].lower() != "data:":
        raise BlockedURLError("only data: URLs are allowed")
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise BlockedURLError("malformed data: URL (no comma)")
    params = [part.strip() for part in header.split(";")]
    media_type = params[0].lower() or "text/plain"
    is_base64 = any(part.lower() == "base64" for part in params[1:])
    if media_type not in ALLOWED_DATA_TYPES:
        raise BlockedURLError(f"data: URL of type {media_type!r} is not allowed")
    # Refuse before decoding: base64 text is 4/3 of the bytes it holds.
    if len(payload) > max_bytes * 4 // 3 + 4 and is_base64:
        raise BlockedURLError(f"data: URL larger than {max_bytes} bytes")
    try:
        if is_base64:
            body = base64.b64decode(unquote_to_bytes(payload), validate=False)
        else:
            body = unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as error:
        raise BlockedURLError(f"undecodable data: URL ({error})") from None
    if len(body) > max_bytes:
        raise BlockedURLError(f"data: URL larger than {max_bytes} bytes")
    _check_content(media_type, body)
    return media_type, body


def _check_content(media_type: str, body: bytes) -> None:
    if media_type == "image/svg+xml":
        # XML text: "<?xml", "<svg" or a comment, after an optional BOM/space.
        if not body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            raise BlockedURLError("data: URL labelled SVG is not XML")
        return
    if not body.startswith(_MAGIC[media_type]):
        raise BlockedURLError(f"data: URL content is not {media_type}")
    if media_type == "image/png":
        # IHDR is the first chunk: width and height are big-endian at 16..24.
        width = int.from_bytes(body[16:20], "big")
        height = int.from_bytes(body[20:24], "big")
        if width * height > MAX_PNG_PIXELS:
            raise BlockedURLError(f"PNG of {width}x{height} pixels is too large")


class LockedURLFetcher(URLFetcher):
    """Serve ``data:`` URLs of allowed types; refuse every other URL.

    WeasyPrint 70 expects a ``URLFetcher`` instance (it reads private attributes
    such as ``_fail_on_errors``), so this subclasses it and replaces ``fetch``;
    the urllib handlers the base class installs are never reached.
    """

    def __init__(self, *, max_bytes: int = MAX_DATA_BYTES) -> None:
        # fail_on_errors=False: a blocked resource is left out with a warning
        # rather than failing the whole report.
        super().__init__(allowed_protocols=("data",), fail_on_errors=False)
        self.max_bytes = max_bytes
        self.blocked: list[str] = []

    def fetch(self, url: str, headers: object = None) -> URLFetcherResponse:
        try:
            media_type, body = parse_data_url(url, max_bytes=self.max_bytes)
        except BlockedURLError:
            # Keep the refusal visible to callers (tests, logs) without the data.
            self.blocked.append(url[:80])
            raise
        return URLFetcherResponse(url, body, {"Content-Type": media_type})

    def open(self, url: object, data: object = None, timeout: object = None) -> None:
        # Nothing may reach urllib through the OpenerDirector interface either.
        raise BlockedURLError("network access is disabled for reports")
