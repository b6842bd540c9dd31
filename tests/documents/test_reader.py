"""The input reader on files it makes itself: every format, folders, archives, and hostile input."""

from __future__ import annotations

import io
import json
import os
import resource
import threading
import time

import pytest

from rlm_worker.documents import InputError, InputLimits, InputTooLarge, read_path, read_uploads
from rlm_worker.engine.prompts import build_system_prompt, describe_context
from tests.support.documents import (
    HTML_PAGE,
    LATIN1_TEXT,
    UTF16_TEXT,
    docx_bytes,
    pdf_bytes,
    pdf_flate_bomb,
    pptx_bytes,
    tar_bytes,
    write_mixed_folder,
    xlsx_bytes,
    zip_bomb,
    zip_bytes,
    zip_with_symlink,
)


def one(name: str, data: bytes) -> str:
    converted = read_uploads([(name, data)])
    assert not converted.many and isinstance(converted.context, str)
    return converted.context


def test_a_pdf_keeps_its_pages_marked():
    text = one("report.pdf", pdf_bytes(["Opening remarks.", "Revenue was 41 million.", "Outlook."]))
    assert text.index("[page 1]") < text.index("Opening") < text.index("[page 2]") < text.index("41 million")
    assert "[page 3]\nOutlook." in text


def test_office_files_html_and_text_in_any_encoding():
    assert "Payment is due within 45 days.\nA | B" in one(
        "terms.docx", docx_bytes(["Terms.", "Payment is due within 45 days."], [["A", "B"], ["1", "2"]])
    )
    assert "[slide 2]\nRevenue grew 12 percent." in one(
        "deck.pptx", pptx_bytes(["Results", "Revenue grew 12 percent."])
    )
    sheet = one("figures.xlsx", xlsx_bytes({"Ports": [["city", "calls"], ["Oslo", 3]], "Empty": []}))
    assert sheet.startswith("[sheet Ports]\ncity,calls\nOslo,3") and "[sheet Empty]" in sheet
    page = one("notice.html", HTML_PAGE.encode())
    assert "# Harbour notice" in page and "**4 May**" in page and "| B7 | Northern Tern |" in page
    assert "secret" not in page and "color:red" not in page
    assert one("cafe.txt", LATIN1_TEXT.encode("latin-1")) == LATIN1_TEXT
    assert one("zug.txt", UTF16_TEXT.encode("utf-16")) == UTF16_TEXT
    assert one("zug-be.txt", UTF16_TEXT.encode("utf-16-be")) == UTF16_TEXT  # no BOM: detected
    assert one("plain", "Привет, как дела? Это текст.".encode("cp1251")) == "Привет, как дела? Это текст."
    assert one("no-extension", pdf_bytes(["Sniffed by its first bytes."])).startswith("[page 1]\nSniffed")


def test_a_folder_keeps_documents_apart_and_skips_what_it_cannot_read(tmp_path):
    facts = write_mixed_folder(tmp_path)
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    (tmp_path / "blank.txt").write_text("  \n")
    (tmp_path / "link.md").symlink_to(tmp_path / "readme.md")
    (tmp_path / "outside").symlink_to("/etc", target_is_directory=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main")

    converted = read_path(tmp_path)

    documents = {doc["name"]: doc for doc in converted.context}
    assert set(documents) == set(facts)
    for name, fact in facts.items():
        assert fact in documents[name]["text"], name
    assert (
        documents["contracts/lease.pdf"]["format"] == "pdf" and documents["notes/zug.txt"]["format"] == "text"
    )
    skipped = {item["name"]: item["reason"] for item in converted.skipped_dicts}
    assert set(skipped) == {"photo.png", "broken.pdf", "blank.txt", "link.md", "outside/"}
    assert "not a readable PDF" in skipped["broken.pdf"] and "link" in skipped["link.md"]
    assert skipped["blank.txt"] == "empty" and "not text" in skipped["photo.png"]


def test_the_root_prompt_lists_the_documents_not_their_text(tmp_path):
    write_mixed_folder(tmp_path)
    context = read_path(tmp_path).context

    described = describe_context(context)

    assert "list of 10 documents" in described
    assert "contracts/lease.pdf (pdf, " in described and "2 pages)" in described
    assert "deck.pptx (pptx, " in described and "2 slides)" in described
    assert "30 June 2031" not in described  # names and sizes, never contents
    assert 'list of documents, each a dict {"name", "format", "text"}' in build_system_prompt(context, 1000)


def test_zip_and_tar_archives_nested_within_the_depth_limit():
    inner = zip_bytes({"inner/note.txt": b"the inner note"})
    bundle = zip_bytes(
        {"a.txt": b"alpha", "deep/b.md": b"# beta", "more.zip": inner, "__MACOSX/._a.txt": b"x"}
    )
    names = [doc["name"] for doc in read_uploads([("bundle.zip", bundle)]).context]
    assert names == ["a.txt", "deep/b.md", "more.zip/inner/note.txt"]
    for mode in ("w", "w:gz", "w:bz2", "w:xz"):
        tarred = tar_bytes({"logs/1.txt": b"one", "logs/2.txt": b"two"}, mode=mode)
        assert [d["text"] for d in read_uploads([("logs.tar", tarred)]).context] == ["one", "two"]
    too_deep = zip_bytes({"l1.zip": zip_bytes({"l2.zip": zip_bytes({"x.txt": b"x"})})})
    with pytest.raises(InputTooLarge, match=r"nests archives more than 2 deep"):
        read_uploads([("deep.zip", too_deep)])


def test_a_zip_bomb_stops_at_the_byte_budget_without_filling_memory():
    bomb = zip_bomb(256 << 20)  # 256 MiB of zeros in about 250 kB
    assert len(bomb) < 1_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InputTooLarge, match=r"bomb.zip: expands to more than 20,000,000 bytes"):
        read_uploads([("bomb.zip", bomb)], InputLimits(max_bytes=20_000_000))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, grown_mb
    # an office file is a zip too: its parser never sees a bomb
    docx_bomb = zip_bytes({"[Content_Types].xml": b"<x/>", "word/document.xml": b"0" * 30_000_000})
    with pytest.raises(InputTooLarge):
        read_uploads([("bomb.docx", docx_bomb)], InputLimits(max_bytes=20_000_000))


def test_archives_that_reach_outside_or_hold_links():
    for name in ("../../etc/cron.d/x", "/etc/passwd", "a/../../b.txt", "C:/windows/x.txt"):
        with pytest.raises(InputError, match=r"points outside the archive \(path traversal\)"):
            read_uploads([("evil.zip", zip_bytes({"ok.txt": b"fine", name: b"pwned"}))])
    with pytest.raises(InputError, match="path traversal"):
        read_uploads([("evil.tgz", tar_bytes({"../x.txt": b"pwned"}))])
    linked = read_uploads([("l.zip", zip_with_symlink({"ok.txt": b"fine"}, "passwd", "/etc/passwd"))])
    assert [d["name"] for d in linked.context] == ["ok.txt"]
    assert linked.skipped_dicts == [{"name": "passwd", "reason": "a symbolic link (links are not followed)"}]
    tar_links = read_uploads([("l.tgz", tar_bytes({"ok.txt": b"fine"}, links={"passwd": "/etc/passwd"}))])
    assert tar_links.skipped_dicts == [{"name": "passwd", "reason": "a link (links are not followed)"}]


def test_file_count_limit_and_inputs_with_nothing_to_read(tmp_path):
    many = zip_bytes({f"f{i}.txt": b"x" for i in range(30)})
    with pytest.raises(InputTooLarge, match=r"more than 20 files \(INPUT_MAX_FILES\)"):
        read_uploads([("many.zip", many)], InputLimits(max_files=20))
    with pytest.raises(InputError, match=r"empty.zip: nothing readable in it \(it holds no files\)"):
        read_uploads([("empty.zip", zip_bytes({}))])
    (tmp_path / "only.png").write_bytes(bytes(range(256)))
    with pytest.raises(InputError, match=r"nothing readable in it \(only.png: not text"):
        read_path(tmp_path)


def test_a_named_file_that_cannot_be_read_is_an_error_naming_it(tmp_path):
    cases = {
        "scan.pdf": b"%PDF-1.4 not really",
        "image.bin": bytes(range(256)) * 4,
        "empty.txt": b"",
        "bad.docx": b"PK\x03\x04 not a zip",
        "broken.zip": b"PK\x03\x04 not a zip",
    }
    for name, data in cases.items():
        with pytest.raises(InputError, match=rf"^{name}: "):
            read_uploads([(name, data)])
    # several uploads: each one named must read, as a single one must
    with pytest.raises(InputError, match=r"^empty.txt: empty"):
        read_uploads([("a.txt", b"alpha"), ("empty.txt", b"")])
    with pytest.raises(InputError, match="no such file or folder"):
        read_path(tmp_path / "missing.pdf")


def test_several_uploads_make_one_list_and_keep_folder_paths():
    converted = read_uploads(
        [
            ("contracts/a.txt", b"alpha"),
            ("../../etc/b.txt", b"beta"),
            ("more.zip", zip_bytes({"c.txt": b"gamma", "d.png": bytes(range(256))})),
        ]
    )
    assert [doc["name"] for doc in converted.context] == ["contracts/a.txt", "b.txt", "more.zip/c.txt"]
    assert converted.skipped_dicts[0]["name"] == "more.zip/d.png"


def test_a_scanned_or_encrypted_pdf_says_so():
    from fpdf import FPDF

    blank = FPDF()
    blank.add_page()
    with pytest.raises(InputError, match="no text layer"):
        read_uploads([("scan.pdf", bytes(blank.output()))])
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(["secret"]))))
    writer.encrypt("pw")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(InputError, match="encrypted with a password"):
        read_uploads([("locked.pdf", out.getvalue())])


def test_a_special_file_in_a_folder_is_skipped_and_odd_names_are_kept_printable(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    os.mkfifo(tmp_path / "pipe")
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt"), "wb") as latin1_name:
        latin1_name.write(b"named in Latin-1")
    converted = read_path(tmp_path)
    assert converted.skipped_dicts == [{"name": "pipe", "reason": "not a regular file"}]
    assert [d["name"] for d in converted.context] == ["a.txt", "caf\ufffd.txt"]
    json.dumps(converted.context).encode("utf-8")  # storable as it is


def test_the_html_title_is_its_own_line_apart_from_the_navigation():
    """#32: "BSD License[Home](/) | …" — the title ran into the navigation that follows it."""
    from rlm_worker.documents.converters import html_text

    page = (
        b"<html><head><title>BSD License</title></head><body><nav><a href='/'>Home</a> | "
        b"<a href='/about'>About</a></nav><h1>The BSD License</h1><p>Redistribution is permitted.</p>"
        b"</body></html>"
    )
    lines = html_text(page).splitlines()
    assert lines[0] == "BSD License"
    assert lines[1] == "" and lines[2].startswith("[Home](/)")
    assert "# The BSD License" in lines and "Redistribution is permitted." in lines


def test_the_red_team_pdf_bomb_is_refused_within_seconds_without_filling_memory():
    """Issue 30: 20 pages whose FlateDecode streams inflate to 60 MB each, about 1.2 MB on disk.
    The streams count against INPUT_MAX_BYTES before any parser opens the file."""
    bomb = pdf_flate_bomb(pages=20, inflated_bytes=60_000_000)
    assert 1_000_000 < len(bomb) < 1_500_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(InputTooLarge, match=r"bomb.pdf: expands to more than 200,000,000 bytes"):
        read_uploads([("bomb.pdf", bomb)], InputLimits())  # the default budget
    assert time.monotonic() - started < 10
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100


def test_a_parser_past_its_memory_or_time_is_stopped_and_refused():
    """Under the byte budget, a PDF can still make its parser build millions of operations: the
    parser runs in a child process with a memory cap and a wall-clock kill."""
    heavy = pdf_flate_bomb(pages=1, inflated_bytes=8_000_000, operator=b"BT /F1 12 Tf (A) Tj ET ")
    started = time.monotonic()
    with pytest.raises(InputTooLarge, match=r"heavy.pdf: took more than 2 s to read \(INPUT_CONVERT_SECONDS\)"):
        read_uploads([("heavy.pdf", heavy)], InputLimits(convert_seconds=2))
    assert time.monotonic() - started < 8
    with pytest.raises(InputTooLarge, match=r"heavy.pdf: needs more than 120 MiB to read \(INPUT_CONVERT_MEMORY"):
        read_uploads([("heavy.pdf", heavy)], InputLimits(convert_memory_bytes=120 << 20))
    # the text a parser makes counts against the budget too
    many_pages = pdf_bytes(["word " * 400] * 5)
    with pytest.raises(InputTooLarge, match=r"expands to more than 5,000 bytes"):
        read_uploads([("long.pdf", many_pages)], InputLimits(max_bytes=5_000))


def test_a_named_fifo_is_refused_at_once_never_opened_for_a_blocking_read(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            read_path(fifo)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert outcome, "read_path blocked on a FIFO"
    assert isinstance(outcome[0], InputError) and "not a regular file" in str(outcome[0])
