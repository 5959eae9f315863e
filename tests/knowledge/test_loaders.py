from pathlib import Path

import pytest

from knowledge import KnowledgeError
from knowledge.chunking import ChunkingConfig, chunk_documents
from knowledge.demo_data import ARTICLES_DIR
from knowledge.loaders import load_documents


def test_markdown_folder_ids_titles_and_urls_from_front_matter():
    docs = {d.id: d for d in load_documents([ARTICLES_DIR]).documents}
    assert len(docs) >= 40
    doc = docs["accounts/reset-password"]
    assert doc.title == "Reset your password"
    assert doc.source == "https://help.northwind.example/accounts/reset-password"
    assert doc.metadata["category"] == "accounts"
    assert not doc.text.startswith("---")


def test_txt_and_jsonl(tmp_path: Path):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "hours.txt").write_text("We are open 9-5.", encoding="utf-8")
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"id": "faq-1", "title": "Hours", "text": "Open daily.", "url": null}\n\n'
                     '{"id": "faq-2", "text": "Closed on holidays.", "metadata": {"lang": "en"}}\n', encoding="utf-8")
    docs = {d.id: d for d in load_documents([tmp_path / "kb", jsonl]).documents}
    assert set(docs) == {"hours", "faq-1", "faq-2"}
    assert docs["faq-2"].title == "faq-2" and docs["faq-2"].metadata == {"lang": "en"}


def test_bad_files_are_reported_and_the_rest_goes_on(tmp_path: Path):
    (tmp_path / "good.md").write_text("# Good\nText.", encoding="utf-8")
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    report = load_documents([tmp_path])
    assert [d.id for d in report.documents] == ["good"]
    failed, reasons = dict(report.failed), dict(report.skipped)
    assert "empty" in failed[str(tmp_path / "empty.md")]
    assert "UTF-8" in failed[str(tmp_path / "binary.txt")]
    assert "unsupported file type .png" in reasons[str(tmp_path / "image.png")]
    assert ".html, .htm, .pdf, .csv, .jsonl" in reasons[str(tmp_path / "image.png")]


def test_duplicate_jsonl_id_names_both_lines(tmp_path: Path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "a", "text": "z"}\n', encoding="utf-8")
    report = load_documents([path])
    assert report.documents == []
    assert report.failed == [(str(path), "duplicate document id 'a' on lines 1 and 3")]


@pytest.mark.parametrize("line, message", [("{not json", "line 1: not valid JSON"), ('{"id": "a"}', "missing text")])
def test_bad_jsonl_lines_are_named(tmp_path: Path, line: str, message: str):
    path = tmp_path / "docs.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    assert message in dict(load_documents([path]).failed)[str(path)]


def test_missing_path_is_a_clear_error(tmp_path: Path):
    with pytest.raises(KnowledgeError, match="does not exist"):
        load_documents([tmp_path / "nope"])


# --- HTML -------------------------------------------------------------------------------------

ARTICLE_HTML = """<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Refund policy | Northwind Help</title>
<link rel="canonical" href="https://help.northwind.example/billing/refunds">
<meta property="og:url" content="https://help.northwind.example/og-url-is-second-choice">
<style>.nav { color: STYLE_RULE; }</style>
<script>var tracker = "SCRIPT_CODE";</script>
</head><body>
<header><nav><a href="/">Home</a> <a href="/billing">Billing</a> <a href="/contact">NAV_LINK</a></nav></header>
<main><article>
<h1>Refund policy</h1>
<p>You can ask for a refund within 30 days of purchase. Refunds go back to the original payment method
and usually take five to ten business days to arrive.</p>
<h2>How to request a refund</h2>
<p>Open the Orders page, choose the order and press Request refund. Quote your order_id when you write to us.</p>
<h2>Exceptions</h2>
<p>Gift cards and activated software cannot be refunded, except where the law of your country requires it.</p>
</article></main>
<footer><p>Copyright 2024 Northwind FOOTER_TEXT</p><a href="/privacy">Privacy</a></footer>
<script>console.log("SCRIPT_TWO")</script>
</body></html>
"""


def test_html_keeps_the_article_and_its_headings_and_reads_title_and_canonical_url(tmp_path: Path):
    (tmp_path / "billing").mkdir()
    (tmp_path / "billing" / "refunds.html").write_text(ARTICLE_HTML, encoding="utf-8")
    [doc] = load_documents([tmp_path]).documents
    assert doc.id == "billing/refunds"
    assert doc.title == "Refund policy"
    assert doc.source == "https://help.northwind.example/billing/refunds"
    lines = doc.text.splitlines()
    assert "## How to request a refund" in lines and "## Exceptions" in lines
    assert "within 30 days of purchase" in doc.text and "Gift cards" in doc.text
    assert "order_id" in doc.text  # markdown escapes (order\_id) are undone
    for boilerplate in ("NAV_LINK", "STYLE_RULE", "SCRIPT_CODE", "SCRIPT_TWO", "FOOTER_TEXT", "Privacy"):
        assert boilerplate not in doc.text


def test_short_html_page_drops_navigation_and_falls_back_to_og_url_and_stem(tmp_path: Path):
    (tmp_path / "hours.htm").write_text(
        "<html><head><meta property='og:url' content='https://help.example/hours'></head><body>"
        "<nav>Home | NAV_LINK</nav><div><h1>Opening hours</h1><p>We are open 9-5 on weekdays.</p></div>"
        "<footer>FOOTER_TEXT</footer></body></html>",
        encoding="utf-8",
    )
    (tmp_path / "no-title.html").write_text(
        "<html><head><link rel='canonical' href='/relative/is/ignored'></head><body>"
        "<article><p>Our phone line is open from nine to five, Monday to Friday, except on public holidays.</p>"
        "</article></body></html>",
        encoding="utf-8",
    )
    docs = {d.id: d for d in load_documents([tmp_path]).documents}
    assert docs["hours"].source == "https://help.example/hours"
    assert "We are open 9-5 on weekdays." in docs["hours"].text
    assert "NAV_LINK" not in docs["hours"].text and "FOOTER_TEXT" not in docs["hours"].text
    assert docs["no-title"].title == "No title"
    assert docs["no-title"].source == (tmp_path / "no-title.html").as_posix()


def test_html_without_main_text_is_skipped(tmp_path: Path):
    (tmp_path / "empty.html").write_text("<html><head><title>Nothing</title></head><body></body></html>", "utf-8")
    report = load_documents([tmp_path])
    assert report.documents == []
    assert "no main text" in dict(report.failed)[str(tmp_path / "empty.html")]


# --- PDF --------------------------------------------------------------------------------------


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal valid PDF: one Helvetica text line per entry of each page (an empty list: a blank page)."""
    n = len(pages)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(n))}] /Count {n} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        escaped = (line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in lines)
        stream = "\n".join(["BT /F1 12 Tf 14 TL 72 720 Td", *(f"({line}) Tj T*" for line in escaped), "ET"]).encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * i} 0 R"
            " /Resources << /Font << /F1 3 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    if title:
        objects.append(f"<< /Title ({title}) >>".encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info = f" /Info {len(objects)} 0 R" if title else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def test_pdf_text_is_split_into_page_sections(tmp_path: Path):
    pages = [
        ["Getting started", "Install the app from the store."],
        [],  # a blank page leaves no section
        ["Billing", "# of seats is shown on every invoice.", "Invoices are emailed monthly."],
    ]
    (tmp_path / "manuals").mkdir()
    (tmp_path / "manuals" / "guide.pdf").write_bytes(make_pdf(pages, title="Northwind user guide"))
    [doc] = load_documents([tmp_path]).documents
    assert doc.id == "manuals/guide"
    assert doc.title == "Northwind user guide"
    assert doc.source == (tmp_path / "manuals" / "guide.pdf").as_posix()
    assert doc.text.startswith("## Page 1\nGetting started\nInstall the app from the store.")
    assert "\n\n## Page 3\nBilling\n" in doc.text and "## Page 2" not in doc.text
    chunks = chunk_documents([doc], lambda text: len(text.split()), ChunkingConfig(chunk_tokens=8, overlap_tokens=0))
    assert len(chunks) > 2
    assert {chunk.section for chunk in chunks} == {"Page 1", "Page 3"}
    assert any("of seats" in chunk.text for chunk in chunks if chunk.section == "Page 3")


def test_pdf_title_falls_back_to_its_first_line(tmp_path: Path):
    (tmp_path / "notes.pdf").write_bytes(make_pdf([[], ["Release notes 4.2", "Faster sync."]]))
    [doc] = load_documents([tmp_path / "notes.pdf"]).documents
    assert (doc.id, doc.title) == ("notes", "Release notes 4.2")
    assert doc.text.startswith("## Page 2\n")


def test_pdf_without_text_is_skipped_as_scanned(tmp_path: Path):
    (tmp_path / "scan.pdf").write_bytes(make_pdf([[], []]))
    report = load_documents([tmp_path])
    assert report.documents == []
    assert report.failed == [(str(tmp_path / "scan.pdf"), "no extractable text (scanned PDF?)")]


def test_corrupt_and_encrypted_pdfs_are_skipped_with_the_reason(tmp_path: Path):
    from pypdf import PdfReader, PdfWriter

    good = make_pdf([["Password reset", "Use the link in the email."]])
    (tmp_path / "good.pdf").write_bytes(good)
    (tmp_path / "truncated.pdf").write_bytes(good[:60])
    (tmp_path / "fake.pdf").write_bytes(b"this is not a PDF at all")
    writer = PdfWriter(clone_from=PdfReader(tmp_path / "good.pdf"))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    writer.write(tmp_path / "locked.pdf")
    report = load_documents([tmp_path])
    assert [d.id for d in report.documents] == ["good"]
    reasons = dict(report.failed)
    assert reasons[str(tmp_path / "truncated.pdf")].startswith("not a readable PDF (")
    assert reasons[str(tmp_path / "fake.pdf")].startswith("not a readable PDF (")
    assert reasons[str(tmp_path / "locked.pdf")] == "encrypted PDF (needs a password)"


# --- CSV FAQs ---------------------------------------------------------------------------------


def test_csv_with_id_column_keeps_other_columns_as_metadata(tmp_path: Path):
    path = tmp_path / "faq.csv"
    path.write_text(
        "ID,Question,Answer,product,language,url\n"
        "refund-window,How long do refunds take?,Five to ten business days.,billing,en,https://help.example/r\n"
        'pw-reset,How do I reset my password?,"Use ""Forgot password"",\nthen check your email.",accounts,,\n',
        encoding="utf-8",
    )
    docs = {d.id: d for d in load_documents([path]).documents}
    assert set(docs) == {"refund-window", "pw-reset"}
    doc = docs["refund-window"]
    assert doc.title == "How long do refunds take?"
    assert doc.text == "How long do refunds take?\n\nFive to ten business days."
    assert doc.metadata == {"product": "billing", "language": "en"}
    assert doc.source == "https://help.example/r"
    assert docs["pw-reset"].text.endswith('Use "Forgot password",\nthen check your email.')
    assert docs["pw-reset"].metadata == {"product": "accounts"}  # empty cells are left out
    assert docs["pw-reset"].source == f"{path.as_posix()}:2"


def test_csv_without_id_column_numbers_rows_and_skips_empty_answers(tmp_path: Path, caplog):
    (tmp_path / "faq").mkdir()
    (tmp_path / "faq" / "billing.csv").write_text(
        "\ufeffq,a\nWhen am I billed?,On the 1st.\nCan I pay by invoice?,\n\nDo you take PayPal?,Yes.\n",
        encoding="utf-8",
    )
    (tmp_path / "shipping.csv").write_text("title;body\nDo you ship abroad?;Yes, worldwide.\n", encoding="utf-8")
    report = load_documents([tmp_path])
    docs = {d.id: d for d in report.documents}
    assert set(docs) == {"faq/billing:1", "faq/billing:3", "shipping:1"}
    assert docs["faq/billing:3"].title == "Do you take PayPal?"
    assert docs["shipping:1"].text == "Do you ship abroad?\n\nYes, worldwide."
    assert report.skipped == [(str(tmp_path / "faq" / "billing.csv"), "row 2 skipped: empty answer")]
    assert "row 2 skipped: empty answer" in caplog.text


def test_csv_without_question_and_answer_columns_is_skipped_naming_its_columns(tmp_path: Path):
    (tmp_path / "good.md").write_text("# Good\nText.", encoding="utf-8")
    (tmp_path / "export.csv").write_text("ticket,subject,status\n1,Login broken,open\n", encoding="utf-8")
    report = load_documents([tmp_path])
    assert [d.id for d in report.documents] == ["good"]
    reason = dict(report.failed)[str(tmp_path / "export.csv")]
    assert "no question/answer columns" in reason and "'ticket', 'subject', 'status'" in reason


def test_csv_columns_can_be_named(tmp_path: Path):
    path = tmp_path / "intents.csv"
    path.write_text("Prompt,Reply,text\nWhere is my order?,Check the Orders page.,ignored\n", encoding="utf-8")
    [doc] = load_documents([path], csv_question_column="prompt", csv_answer_column="REPLY").documents
    assert (doc.id, doc.title) == ("intents:1", "Where is my order?")
    assert doc.text == "Where is my order?\n\nCheck the Orders page."
    assert doc.metadata == {"text": "ignored"}
    report = load_documents([path], csv_question_column="missing")
    assert report.documents == []
    assert "no column 'missing'" in dict(report.failed)[str(path)]


def test_duplicate_csv_ids_name_both_rows(tmp_path: Path):
    path = tmp_path / "faq.csv"
    path.write_text("id,question,answer\na,Q1?,A1.\nb,Q2?,A2.\na,Q3?,A3.\n", encoding="utf-8")
    report = load_documents([path])
    assert report.documents == []
    assert report.failed == [(str(path), "duplicate document id 'a' on rows 1 and 3")]


def test_csv_rows_with_more_cells_than_the_header_are_reported_with_their_row_numbers(tmp_path: Path):
    path = tmp_path / "faq.csv"
    path.write_text("question,answer\nHow long do refunds take?,Refunds take 5 days, sometimes 10.\n"
                    "Do you gift wrap?,Yes.,\n"  # a trailing empty cell cuts nothing
                    "Where do you ship?,Europe, the US and Canada.\n", encoding="utf-8")
    report = load_documents([path])
    assert report.documents == []
    reason = dict(report.failed)[str(path)]
    assert "rows 1, 3 have more cells than the header's 2 columns" in reason and "quote" in reason
