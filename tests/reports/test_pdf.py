from __future__ import annotations

import base64
import hashlib
import http.server
import io
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pydyf
import pytest
from django.template import engines
from PIL import Image
from pypdf import PdfReader

from reports import charts
from reports.fetcher import BlockedURLError, LockedURLFetcher, parse_data_url
from reports.pdf import (
    RenderedPdf,
    _refuse_embedded_files,
    custom_info_key,
    page_is_blank,
    pdf_page_pngs,
    pdf_text,
    render_pdf,
)

CREATED = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
METADATA = {
    "author": "Compliance office",
    "subject": "Explanation of an automated decision",
    "keywords": "GDPR Art. 22, explanation",
    "report_reference": "EXP-2026-0042",
    "model_version": "adult-gov v4",
}
PASSWD = Path("/etc/passwd")
# A line that only /etc/passwd would put in a PDF.
PASSWD_MARKER = PASSWD.read_text().splitlines()[0] if PASSWD.exists() else "root:x:0"


def html_page(body: str, head: str = "") -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{head}</head>'
        f"<body><h1>Report body</h1>{body}</body></html>"
    )


def render_base(content: str, **context: object) -> str:
    template = engines["django"].from_string(
        '{% extends "reports/base.html" %}'
        "{% block content %}{{ content|safe }}{% endblock %}"
        "{% block small_print %}<h2>Legal</h2><p>Small print about Art. 22 GDPR."
        "</p>{% endblock %}"
    )
    defaults = {"title": "Decision explanation", "kind": "Individual explanation"}
    return template.render({**defaults, **context, "content": content})


def png_data_url(color: str = "#0072b2") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def embedded_files(data: bytes) -> list[str]:
    """Every way a PDF can carry a file: the name tree and annotation files."""
    reader = PdfReader(io.BytesIO(data))
    found = list(reader.attachments)
    for page in reader.pages:
        for annotation in page.get("/Annots", []) or []:
            annotation = annotation.get_object()
            if annotation.get("/Subtype") == "/FileAttachment" or "/FS" in annotation:
                found.append(str(annotation.get("/FS")))
    return found


# --- rendering, metadata, reproducibility ---------------------------------


def test_report_renders_with_readable_text_and_page_numbers() -> None:
    html = render_base("<p>The model scored 0.31.</p>", reference="EXP-2026-0042")

    result = render_pdf(html, title="Decision explanation", metadata=METADATA)

    assert isinstance(result, RenderedPdf)
    assert result.data.startswith(b"%PDF-")
    assert result.sha256 == hashlib.sha256(result.data).hexdigest()
    assert result.pages == 1
    assert 0 < result.seconds < 30
    text = pdf_text(result.data)
    assert "The model scored 0.31." in text
    assert "Page 1 of 1" in text
    assert "Ref. EXP-2026-0042" in text  # running header
    assert "Small print about Art. 22 GDPR." in text


def test_metadata_is_readable_by_pypdf() -> None:
    result = render_pdf(
        html_page("<p>x</p>"),
        title="Zo\u00eb\u2019s explanation",
        metadata=METADATA,
        created=CREATED,
    )

    info = PdfReader(io.BytesIO(result.data)).metadata
    assert info.title == "Zo\u00eb\u2019s explanation"
    assert info.author == "Compliance office"
    assert info.subject == "Explanation of an automated decision"
    assert info["/Keywords"] == "GDPR Art. 22, explanation"
    assert info["/ReportReference"] == "EXP-2026-0042"
    assert info["/ModelVersion"] == "adult-gov v4"
    assert info.creation_date == CREATED
    assert info.modification_date == CREATED


def test_metadata_in_the_html_cannot_override_the_arguments() -> None:
    head = (
        "<title>Forged title</title><meta name=author content=Mallory>"
        "<meta name=ReportReference content=FORGED><meta name=Evil content=1>"
    )

    result = render_pdf(html_page("<p>x</p>", head), title="Real", metadata=METADATA)

    info = PdfReader(io.BytesIO(result.data)).metadata
    assert info.title == "Real"
    assert info.author == "Compliance office"
    assert info["/ReportReference"] == "EXP-2026-0042"
    assert "/Evil" not in info


def test_pdfa_3b_output_declares_conformance_and_output_intent() -> None:
    result = render_pdf(
        render_base(charts.embed(_hbar(), alt="Contributions")),
        title="Archive copy",
        metadata=METADATA,
        created=CREATED,
    )

    assert result.variant == "pdf/a-3b"
    reader = PdfReader(io.BytesIO(result.data))
    root = reader.trailer["/Root"]
    assert "/OutputIntents" in root
    xmp = root["/Metadata"].get_object().get_data()
    assert b'pdfaid:part="3"' in xmp
    assert b'pdfaid:conformance="B"' in xmp
    assert b"Archive copy" in xmp
    for font in _fonts(reader):
        descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
        assert "/FontFile2" in descriptor.get_object(), "PDF/A needs embedded fonts"


def test_plain_variant_has_no_pdfa_claim() -> None:
    result = render_pdf(html_page("<p>x</p>"), title="t", metadata={}, pdf_variant=None)

    assert result.variant is None
    root = PdfReader(io.BytesIO(result.data)).trailer["/Root"]
    assert "/OutputIntents" not in root


def test_same_input_gives_the_same_bytes_even_at_another_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    html = render_base(charts.embed(_hbar(), alt="Contributions"), reference="R-1")
    first = render_pdf(html, title="t", metadata=METADATA, created=CREATED)
    # fontTools stamps font subsets with the clock; a day later must not matter.
    later = time.time() + 86_400
    monkeypatch.setattr(time, "time", lambda: later)

    second = render_pdf(html, title="t", metadata=METADATA, created=CREATED)

    assert second.sha256 == first.sha256
    other = render_pdf(
        html, title="t", metadata=METADATA, created=CREATED + timedelta(seconds=1)
    )
    assert other.sha256 != first.sha256


def test_created_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_pdf("<p>x</p>", title="t", metadata={}, created=datetime(2026, 1, 1))


def test_created_keeps_its_utc_offset() -> None:
    paris = datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))

    result = render_pdf("<p>x</p>", title="t", metadata={}, created=paris)

    assert PdfReader(io.BytesIO(result.data)).metadata.creation_date == paris


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("report reference", "letters, digits and underscores"),
        ("1st", "starting with a letter"),
        ("title", "shadows the PDF's own /Title"),
        ("mod_date", "shadows the PDF's own /ModDate"),
    ],
)
def test_bad_custom_metadata_keys_are_refused(key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_pdf("<p>x</p>", title="t", metadata={key: "v"})


def test_custom_keys_become_pdf_names() -> None:
    assert custom_info_key("report_reference") == "ReportReference"
    assert custom_info_key("modelVersion") == "ModelVersion"


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown PDF variant"):
        render_pdf("<p>x</p>", title="t", metadata={}, pdf_variant="pdf/a-9z")


# --- the locked fetcher ---------------------------------------------------

FILE_URL = "file:///etc/passwd"
VECTORS = {
    "img": '<img src="{url}" alt="i">',
    "css-url": '<div style="background: url({url}); height: 20px"></div>',
    "stylesheet": "<link rel=stylesheet href={url}>",
    "import": "<style>@import url({url});</style>",
    "font-face": "<style>@font-face {{ font-family: X; src: url({url}) }}"
    " p {{ font-family: X }}</style>",
    "link-attachment": '<link rel=attachment href="{url}" title="passwd">',
    "a-attachment": '<a rel=attachment href="{url}">the file</a>',
    "svg-image": '<svg xmlns="http://www.w3.org/2000/svg" width="50" height="50">'
    '<image href="{url}" width="50" height="50"/></svg>',
    "object": '<object data="{url}" type="text/plain">fallback</object>',
    "embed": '<embed src="{url}" type="image/svg+xml">',
}


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_local_files_are_never_read(
    vector: str, caplog: pytest.LogCaptureFixture
) -> None:
    html = html_page(VECTORS[vector].format(url=FILE_URL))

    result = render_pdf(html, title="t", metadata=METADATA)

    assert result.pages >= 1  # the render itself succeeds
    assert "Report body" in pdf_text(result.data)
    assert PASSWD_MARKER not in pdf_text(result.data)
    assert embedded_files(result.data) == []
    assert b"/EmbeddedFile" not in result.data
    # Attachments are dropped before anything fetches them; WeasyPrint never
    # loads <object> or <embed>. Everything else reaches the fetcher and stops.
    if vector not in ("object", "embed", "link-attachment", "a-attachment"):
        assert FILE_URL in result.blocked_urls


def test_relative_urls_resolved_against_a_file_base_are_refused(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret.css"
    secret.write_text("h1 { color: red }")

    result = render_pdf(
        html_page('<link rel=stylesheet href="secret.css"><img src="secret.css">'),
        title="t",
        metadata={},
        base_url=str(tmp_path) + "/",
    )

    assert all(url.startswith("file:") for url in result.blocked_urls)
    assert len(result.blocked_urls) == 2


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"h1 { color: red }")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []
    handler = type("Handler", (_RecordingHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_network_addresses_are_never_requested(
    loopback_server: tuple[str, list[str]],
) -> None:
    address, requests = loopback_server
    # Prove the server answers, so "no request" below means "never asked".
    import urllib.request

    with urllib.request.urlopen(f"http://{address}/probe", timeout=5) as response:
        assert response.status == 200
    requests.clear()
    urls = [
        f"http://{address}/img.png",
        f"https://{address}/tls.css",
        f"ftp://{address}/file.txt",
        f"//{address}/scheme-relative.png",
    ]
    body = "".join(
        template.format(url=url) for url in urls for template in VECTORS.values()
    )

    result = render_pdf(html_page(body), title="t", metadata={}, base_url="http://x/")

    assert "Report body" in pdf_text(result.data)
    assert requests == []
    assert embedded_files(result.data) == []
    assert any(url.startswith(f"http://{address}/") for url in result.blocked_urls)


def test_inline_data_images_are_allowed(tmp_path: Path) -> None:
    html = html_page(f'<img src="{png_data_url("#000000")}" style="width: 100%">')

    result = render_pdf(html, title="t", metadata={}, pdf_variant=None)

    assert result.blocked_urls == ()
    [page] = pdf_page_pngs(result.data, tmp_path)
    with Image.open(page) as image:
        dark = sum(image.convert("L").histogram()[:50])
    assert dark > 1000  # the black image is on the page


@pytest.mark.parametrize("vector", ["link-attachment", "a-attachment"])
def test_attachments_are_dropped_even_from_allowed_data_urls(vector: str) -> None:
    html = html_page(VECTORS[vector].format(url=png_data_url()))

    result = render_pdf(html, title="t", metadata={})

    assert embedded_files(result.data) == []
    assert b"/EmbeddedFile" not in result.data
    assert b"/Filespec" not in result.data


def test_the_last_check_refuses_a_pdf_with_an_embedded_file() -> None:
    pdf = pydyf.PDF()
    pdf.add_object(pydyf.Dictionary({"Type": "/Filespec"}))

    with pytest.raises(RuntimeError, match="embedded file"):
        _refuse_embedded_files(None, pdf)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:text/html,<b>x</b>", "type 'text/html' is not allowed"),
        ("data:,plain", "type 'text/plain' is not allowed"),
        ("data:image/svg+xml", "no comma"),
        ("data:application/pdf;base64,JVBERi0=", "not allowed"),
        ("javascript:alert(1)", "only data: URLs"),
        ("file:///etc/passwd", "only data: URLs"),
    ],
)
def test_data_url_parser_refuses_what_a_report_never_needs(
    url: str, message: str
) -> None:
    with pytest.raises(BlockedURLError, match=message):
        parse_data_url(url)


def test_data_url_bytes_must_match_their_declared_type() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    # Pillow would sniff this as EPS and hand it to Ghostscript.
    with pytest.raises(BlockedURLError, match="content is not image/png"):
        parse_data_url("data:image/png;base64," + base64.b64encode(eps).decode())
    with pytest.raises(BlockedURLError, match="labelled SVG is not XML"):
        parse_data_url("data:image/svg+xml;base64," + base64.b64encode(eps).decode())
    with pytest.raises(BlockedURLError, match="content is not font/woff2"):
        parse_data_url("data:font/woff2;base64,AAAA")


def test_png_bombs_are_refused_from_the_header() -> None:
    header = bytearray(base64.b64decode(png_data_url().split(",")[1]))
    header[16:24] = (100_000).to_bytes(4, "big") * 2

    with pytest.raises(BlockedURLError, match="100000x100000 pixels is too large"):
        parse_data_url("data:image/png;base64," + base64.b64encode(header).decode())


@pytest.mark.parametrize(
    "svg",
    [
        # An allowed SVG that names a local file itself.
        '<svg xmlns="http://www.w3.org/2000/svg" '
        'xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="40">'
        '<image xlink:href="file:///etc/passwd" width="40" height="40"/>'
        "<text y='20'>ok</text></svg>",
        # An external entity (XXE): the XML parser must not expand it.
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM '
        '"file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg" '
        'width="40" height="40"><text y="20">&x;</text></svg>',
    ],
    ids=["nested-image", "xxe"],
)
def test_svg_data_urls_cannot_reach_local_files(svg: str) -> None:
    html = html_page(f'<img src="{charts.svg_data_uri(svg)}" alt="chart">')

    result = render_pdf(html, title="t", metadata={})

    assert "Report body" in pdf_text(result.data)
    assert PASSWD_MARKER not in pdf_text(result.data)
    if "xlink:href" in svg:
        assert FILE_URL in result.blocked_urls


def test_data_urls_over_the_size_cap_are_refused() -> None:
    svg = "<svg xmlns='http://www.w3.org/2000/svg'>" + " " * 2000 + "</svg>"
    url = charts.svg_data_uri(svg)

    assert parse_data_url(url, max_bytes=4096)[0] == "image/svg+xml"
    with pytest.raises(BlockedURLError, match="larger than 1000 bytes"):
        parse_data_url(url, max_bytes=1000)
    with pytest.raises(BlockedURLError, match="larger than 1000 bytes"):
        parse_data_url("data:image/svg+xml," + "a" * 1001, max_bytes=1000)


def test_fetcher_cannot_be_used_as_a_urllib_opener() -> None:
    with pytest.raises(BlockedURLError, match="network access is disabled"):
        LockedURLFetcher().open("http://127.0.0.1/")


# --- reading pages back -----------------------------------------------------


def test_rendered_report_pages_are_not_blank(tmp_path: Path) -> None:
    html = render_base(
        charts.embed(_hbar(), alt="Contributions") + "<p>After the chart.</p>",
        reference="EXP-1",
    )
    result = render_pdf(html, title="t", metadata={})

    pages = pdf_page_pngs(result.data, tmp_path, dpi=40)

    assert len(pages) == result.pages == 1
    assert not page_is_blank(pages[0])


def test_an_empty_page_is_blank(tmp_path: Path) -> None:
    result = render_pdf("<html><body></body></html>", title="t", metadata={})

    [page] = pdf_page_pngs(result.data, tmp_path)

    assert page_is_blank(page)


def test_long_reports_number_every_page(tmp_path: Path) -> None:
    rows = "".join(f"<tr><td>row {i}</td><td>{i}</td></tr>" for i in range(150))
    html = render_base(
        f"<table><thead><tr><th>a</th><th>b</th></tr></thead>{rows}</table>"
    )

    result = render_pdf(html, title="t", metadata={}, pdf_variant=None)

    assert result.pages >= 3
    pages = pdf_text(result.data).split("\f")
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {result.pages}" in text
    assert "row 149" in pages[-1]
    assert len(pdf_page_pngs(result.data, tmp_path, dpi=20)) == result.pages


def _hbar() -> str:
    return charts.bar_chart_horizontal(
        [("age", 0.42), ("hours_per_week", -0.18), ("education_num", 0.07)],
        title="Contributions",
    )


def _fonts(reader: PdfReader) -> list:
    fonts = []
    for page in reader.pages:
        resources = page["/Resources"].get_object()
        for font in resources.get("/Font", {}).values():
            fonts.append(font.get_object())
    return fonts
