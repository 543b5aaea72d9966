"""HTML to PDF with WeasyPrint, locked down, with metadata and a content hash.

``render_pdf`` is the one way reports become PDFs:

* Resources: only ``data:`` URLs of a few image/font types load (see
  reports/fetcher.py). Anything else is left out with a logged warning; the
  render still succeeds.
* Attachments: none. WeasyPrint embeds files named by ``<link rel=attachment>``
  and ``<a rel=attachment>`` (the latter as page annotations, which pypdf's
  ``reader.attachments`` does not list). A ``data:`` URL would pass the
  fetcher, so both are dropped from the laid-out document, and a finisher
  refuses to write a PDF that still holds an embedded file.
* Metadata: set from arguments, not from the template's ``<meta>`` tags, so
  user data in the HTML cannot change what the PDF says about itself.
  Title, Author, Subject, Keywords go to the standard Info entries and the
  XMP packet; other keys (``report_reference`` -> ``/ReportReference``) are
  custom Info entries. Custom Info keys are allowed in PDF/A-2 and -3 (only
  the standard keys must match XMP), so no post-processing is needed, and
  none is done: rewriting the file with pypdf would drop the PDF/A claim's
  guarantees and change the bytes that were hashed.
* Reproducible: WeasyPrint derives the file /ID from the content, and font
  subsets get a pinned timestamp (see ``FONT_EPOCH``), so the same HTML,
  metadata and ``created`` give the same bytes and the same SHA-256. Pass the
  record's timestamp as ``created``, never "now".
* PDF/A-3b by default: an archival format suits records kept for audits, and
  PDF/A-3 (unlike PDF/A-1) permits the transparency SVG charts may use. It
  cost no measurable render time (bench/bench_reports_core.py) and adds 3-4
  KiB (the sRGB output intent). WeasyPrint writes the PDF/A structures but
  does not validate them; no validator (veraPDF) has checked these files.
* Tagged where asked (``pdf_tags=True``, the reports given to the person a
  decision is about): WeasyPrint writes the structure tree (StructTreeRoot;
  headings H1-H6, lists, tables, Figure with the image's ``alt`` as /Alt),
  MarkInfo /Marked true, the document language from ``<html lang>`` and
  DisplayDocTitle, so a screen reader reads the PDF in order. WeasyPrint 70
  takes one ``pdf_variant``: PDF/UA-1 ("pdf/ua-1") cannot be claimed together
  with PDF/A, so the archival PDF/A-3b stays and the tags are added to it. Not
  "pdf/a-3a" either: that claims the accessible conformance level A, which no
  validator has checked here; 3b plus tags carries the same structure without
  the claim.
* Speed: with the system library libharfbuzz-subset0 WeasyPrint subsets fonts
  in ~2 ms; without it, it falls back to fontTools, ~0.3 s per document.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reports.fetcher import LockedURLFetcher

logger = logging.getLogger(__name__)

DEFAULT_VARIANT = "pdf/a-3b"
GENERATOR = "model-governance reports"
# Keys a caller may pass in `metadata` that map to standard PDF Info entries.
STANDARD_KEYS = frozenset({"author", "subject", "keywords", "creator"})
# Info entries WeasyPrint or the PDF spec own; a custom key may not shadow them.
RESERVED_INFO_KEYS = frozenset(
    {"Title", "Author", "Subject", "Keywords", "Creator", "Producer",
     "CreationDate", "ModDate", "Trapped"}
)  # fmt: skip
_CUSTOM_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
# fontTools stamps each font subset's `head.modified` with the clock unless
# SOURCE_DATE_EPOCH is set (reproducible-builds convention), which made two
# renders of the same report differ. The date means nothing in a subset.
FONT_EPOCH = "946684800"  # 2000-01-01T00:00:00Z
_ENV_LOCK = threading.Lock()


@dataclass(frozen=True)
class RenderedPdf:
    data: bytes
    sha256: str
    pages: int
    seconds: float
    variant: str | None
    # URLs the fetcher refused (cut to 80 characters): worth logging, since a
    # template should not name any.
    blocked_urls: tuple[str, ...] = ()


def custom_info_key(key: str) -> str:
    """``report_reference`` -> ``ReportReference``: the PDF Info name for a key."""
    if not _CUSTOM_KEY.fullmatch(key):
        raise ValueError(
            f"metadata key {key!r} must be letters, digits and underscores, "
            "starting with a letter"
        )
    name = "".join(part[:1].upper() + part[1:] for part in key.split("_") if part)
    if name in RESERVED_INFO_KEYS:
        raise ValueError(f"metadata key {key!r} shadows the PDF's own /{name}")
    return name


def _w3c_datetime(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("created must be timezone-aware (a record's timestamp)")
    return moment.replace(microsecond=0).isoformat()


def _variants() -> frozenset[str]:
    from weasyprint.pdf import VARIANTS

    return frozenset(VARIANTS)


@contextlib.contextmanager
def _pinned_font_timestamps() -> Iterator[None]:
    # The lock keeps threads (the dev server, a threaded worker pool) from
    # restoring the variable under another render.
    with _ENV_LOCK:
        previous = os.environ.get("SOURCE_DATE_EPOCH")
        if previous is None:
            os.environ["SOURCE_DATE_EPOCH"] = FONT_EPOCH
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("SOURCE_DATE_EPOCH", None)


def _refuse_embedded_files(document: object, pdf: object) -> None:
    """Finisher: the last check before bytes are written. Never expected to fire."""
    for item in pdf.objects:  # type: ignore[attr-defined]
        fields = getattr(item, "extra", item)
        if isinstance(fields, dict) and fields.get("Type") in (
            "/Filespec",
            "/EmbeddedFile",
        ):
            raise RuntimeError("refusing to write a report PDF with an embedded file")


def render_pdf(
    html: str,
    *,
    title: str,
    metadata: Mapping[str, str],
    pdf_variant: str | None = DEFAULT_VARIANT,
    base_url: str | None = None,
    created: datetime | None = None,
    pdf_tags: bool = False,
) -> RenderedPdf:
    """Render report HTML to PDF bytes through the locked fetcher.

    ``metadata``: ``author``, ``subject``, ``keywords`` (comma separated) and
    ``creator`` go to the standard entries; any other key must look like an
    identifier and becomes a custom Info entry (``model_version`` ->
    ``/ModelVersion``). ``created`` (timezone-aware) is written as both the
    creation and modification date; leave it None for no date at all.
    ``base_url`` resolves relative URLs; since the fetcher refuses all but
    ``data:`` URLs, it only changes what the warnings name. ``pdf_tags``
    writes the structure tree for assistive technology (see module docstring).
    """
    # Imported here: WeasyPrint costs ~0.4 s and a lot of memory to import, and
    # the web process imports reports/ without rendering.
    from weasyprint import HTML

    if pdf_variant is not None and pdf_variant not in _variants():
        raise ValueError(f"unknown PDF variant {pdf_variant!r}")
    custom = {
        custom_info_key(key): str(value)
        for key, value in metadata.items()
        if key not in STANDARD_KEYS
    }
    started = time.perf_counter()
    fetcher = LockedURLFetcher()
    document = HTML(string=html, base_url=base_url, url_fetcher=fetcher).render()

    # No attachments, whatever the HTML says (see module docstring).
    document.metadata.attachments = []
    for page in document.pages:
        page.links = [link for link in page.links if link[0] != "attachment"]

    meta = document.metadata
    meta.title = title
    meta.authors = [metadata["author"]] if metadata.get("author") else []
    meta.description = metadata.get("subject") or None
    meta.keywords = [
        word.strip() for word in metadata.get("keywords", "").split(",") if word.strip()
    ]
    meta.generator = metadata.get("creator") or GENERATOR
    meta.created = meta.modified = _w3c_datetime(created) if created else None
    meta.custom = custom
    meta.xmp_metadata = []

    with _pinned_font_timestamps():
        data = document.write_pdf(
            pdf_variant=pdf_variant,
            pdf_tags=pdf_tags,
            custom_metadata=True,
            finisher=_refuse_embedded_files,
        )
    seconds = time.perf_counter() - started
    if fetcher.blocked:
        logger.warning(
            "report %r: refused %d resource URL(s): %s",
            title,
            len(fetcher.blocked),
            ", ".join(fetcher.blocked[:5]),
        )
    return RenderedPdf(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        pages=len(document.pages),
        seconds=seconds,
        variant=pdf_variant,
        blocked_urls=tuple(fetcher.blocked),
    )


# --- Reading PDFs back (tests, verification) -------------------------------


def pdf_text(data: bytes) -> str:
    """All text of a PDF, pages separated by form feeds (pypdf)."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return "\f".join(page.extract_text() or "" for page in reader.pages)


def pdf_page_pngs(data: bytes, folder: Path | str, dpi: int = 50) -> list[Path]:
    """Rasterise every page with poppler's pdftoppm; returns the PNG paths in order."""
    executable = shutil.which("pdftoppm")
    if executable is None:
        raise RuntimeError("pdftoppm not found: install poppler-utils")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "document.pdf"
    source.write_bytes(data)
    subprocess.run(
        [executable, "-r", str(dpi), "-png", str(source), str(folder / "page")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # pdftoppm pads page numbers to the width of the page count: sort numerically.
    return sorted(
        folder.glob("page-*.png"), key=lambda path: int(path.stem.rsplit("-", 1)[1])
    )


def page_is_blank(png_path: Path | str, *, threshold: float = 0.002) -> bool:
    """True when fewer than ``threshold`` of the pixels are not (near) white."""
    from PIL import Image

    with Image.open(png_path) as image:
        grey = image.convert("L")
        histogram = grey.histogram()
    total = sum(histogram)
    inked = sum(histogram[:240])  # anything darker than near-white
    return inked / total < threshold
