"""Documents for the document tests, made in memory: PDFs with fpdf2, DOCX files with
python-docx, and the hostile ones by hand (an encrypted PDF, a truncated one, one whose
page tree claims 10,000 pages, an image-only one, a DOCX zip bomb).

Imported by test modules (``from document_helpers import …``): pytest puts ``tests/``,
the directory of the root conftest, on ``sys.path``.
"""

from __future__ import annotations

import io
import zipfile

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def make_pdf(pages: list[str]) -> bytes:
    """A PDF with one page per text (Helvetica: Latin-1 characters only), each line of a
    text a line of its page."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        for line in text.split("\n"):
            pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def make_docx(
    pages: list[list[str]], *, table: list[list[str]] | None = None, break_before: bool = False
) -> bytes:
    """A DOCX whose pages hold these paragraphs, separated by page breaks: a break run
    (Word's Ctrl+Enter), or with ``break_before`` the "page break before" property of each
    page's first paragraph. ``table``: rows of cells added after page 1's paragraphs."""
    import docx

    document = docx.Document()
    for number, paragraphs in enumerate(pages):
        if number and not break_before:
            document.add_page_break()
        for i, text in enumerate(paragraphs):
            paragraph = document.add_paragraph(text)
            if number and break_before and i == 0:
                paragraph.paragraph_format.page_break_before = True
        if number == 0 and table:
            grid = document.add_table(rows=len(table), cols=len(table[0]))
            for r, row in enumerate(table):
                for c, value in enumerate(row):
                    grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def encrypted_pdf(password: str = "secret", owner: str | None = None) -> bytes:  # noqa: S107
    """A text PDF encrypted with pypdf's writer (AES-256) and user password ``password``."""
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["Confidential CV of Jane Doe"])))
    writer.encrypt(password, owner_password=owner, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def truncated_pdf() -> bytes:
    """The first half of a text PDF (as a broken download leaves it)."""
    data = make_pdf(["Page one of a CV", "Page two of a CV"])
    return data[: len(data) // 2]


def hand_made_pdf(count: int, kids: int = 1, text: str = "Hello") -> bytes:
    """A PDF written object by object with a correct cross-reference table, whose page
    tree has ``kids`` real pages but *states* ``/Count count``."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    page_ids = [5 + i for i in range(kids)]
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(f"{i} 0 R".encode() for i in page_ids)
        + f"] /Count {count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    for _ in page_ids:
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
        )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def image_only_pdf() -> bytes:
    """A two-page PDF with no text at all: a drawn shape and an image (as a scan)."""
    from fpdf import FPDF
    from PIL import Image

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 80, 40, style="F")
    pdf.line(10, 10, 150, 150)
    pdf.add_page()
    pdf.image(Image.new("RGB", (64, 64), (200, 30, 30)), x=20, y=20, w=60)
    return bytes(pdf.output())


def docx_bomb(megabytes: int = 50) -> bytes:
    """A DOCX whose ``word/document.xml`` decompresses to ``megabytes`` MiB of zeros from
    some 50 KB (deflate's ratio of about 1,000 to 1); the other parts are a real DOCX's."""
    real = make_docx([["bomb"]])
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(real)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            if info.filename == "word/document.xml":
                with dst.open("word/document.xml", "w") as fh:
                    chunk = b"\0" * (1 << 20)
                    for _ in range(megabytes):
                        fh.write(chunk)
            else:
                dst.writestr(info, src.read(info.filename))
    return out.getvalue()


def zip_without_document() -> bytes:
    """A ZIP archive that is not a Word document."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "just a zip")
    return out.getvalue()
