"""`rlm run` over folders, archives and files that are not plain text, and the inputs it refuses:
real subprocesses, real SQLite, the scripted model answering the root."""

from __future__ import annotations

import json

from tests.cli.readme import readme_command, run_shell
from tests.cli.scripts import is_root
from tests.support.documents import pdf_bytes, tar_bytes, write_mixed_folder, zip_bomb, zip_bytes

# The root program: name the documents that back the answer, from the text in code.
CITE = """```repl
hits = [d["name"] for d in context if "2031" in d["text"]]
pages = [line for d in context for line in d["text"].split("\\n\\n") if "2031" in line]
FINAL(", ".join(hits) + " | " + " ".join(p.split("\\n")[0] for p in pages))
```"""


def recording_responder(seen: list[str]):
    def respond(request):
        if is_root(request):
            seen.append("\n".join(str(m["content"]) for m in request["messages"]))
            return CITE
        return "NONE"

    return respond


def test_a_folder_is_a_list_of_documents_and_its_unreadable_files_are_named(cli_env, scripted, tmp_path):
    folder = tmp_path / "contracts"
    folder.mkdir()
    write_mixed_folder(folder)
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    seen: list[str] = []
    scripted.responder = recording_responder(seen)
    command = readme_command("rlm run ./contracts/").replace("./contracts/", f"{folder}/")

    done = run_shell(command, cli_env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "contracts/lease.pdf | [page 2]"
    assert "rlm: skipped photo.png: not text, and not a format this reader knows" in done.stderr
    prompt = seen[0]
    assert "list of 10 documents" in prompt and "contracts/lease.pdf (pdf, " in prompt
    assert "30 June 2031" not in prompt  # the root sees names and sizes, never the text

    record = json.loads(run_shell(f"{command} --json", cli_env).stdout)
    assert record["options"]["skipped"] == [
        {"name": "photo.png", "reason": "not text, and not a format this reader knows"}
    ]


def test_zip_tar_and_a_pdf_from_standard_input(cli_env, scripted, tmp_path):
    scripted.responder = recording_responder([])
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(
        zip_bytes({"2030/a.txt": b"ends 2030", "2031/lease.pdf": pdf_bytes(["x", "ends 2031"])})
    )
    done = run_shell(readme_command("rlm run bundle.zip").replace("bundle.zip", str(bundle)), cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2031/lease.pdf | [page 2]"

    tarred = tmp_path / "logs.tar.gz"
    tarred.write_bytes(tar_bytes({"logs/1.txt": b"renewal in 2031"}))
    done = run_shell(f"rlm run {tarred} -q 'When?'", cli_env)
    assert done.returncode == 0 and done.stdout.strip() == "logs/1.txt | renewal in 2031", done.stderr

    pdf = tmp_path / "lease.pdf"
    pdf.write_bytes(pdf_bytes(["Preamble", "The lease ends in 2031."]))
    scripted.responder = lambda request: "```repl\nFINAL(context[:42])\n```" if is_root(request) else "NONE"
    done = run_shell(f"cat {pdf} | rlm run - -q 'When does it end?'", cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[page 1]\nPreamble\n\n[page 2]\nThe lease ends"


def test_bad_inputs_end_with_one_line_and_nothing_run(cli_env, scripted, tmp_path):
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 cut short")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "evil.zip").write_bytes(zip_bytes({"../../.bashrc": b"rm -rf ~"}))
    (tmp_path / "bomb.zip").write_bytes(zip_bomb(64 << 20))
    (tmp_path / "nothing").mkdir()
    cases = {
        f"rlm run {tmp_path}/broken.pdf -q 'What?'": "broken.pdf: not a readable PDF file",
        f"rlm run {tmp_path}/empty.txt -q 'What?'": "empty.txt: empty",
        "rlm run - -q 'What?' < /dev/null": "stdin: empty",
        f"rlm run {tmp_path}/evil.zip -q 'What?'": "'../../.bashrc' points outside the archive",
        f"INPUT_MAX_BYTES=10000000 rlm run {tmp_path}/bomb.zip -q 'What?'": "expands to more than 10,000,000",
        f"rlm run {tmp_path}/nothing -q 'What?'": "nothing readable in it (it holds no files)",
        f"rlm run {tmp_path}/missing.txt -q 'What?'": "missing.txt: no such file or folder",
        "rlm run samples/northern_tern_log.txt -q '   '": "the question (-q) is empty",
    }
    for command, message in cases.items():
        done = run_shell(command, cli_env)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("rlm: "), done.stderr
        assert message in done.stderr, (command, done.stderr)
    assert scripted.stats()["total_calls"] == 0  # nothing ran
