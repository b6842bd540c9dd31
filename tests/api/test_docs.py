"""docs/api.md cannot rot: every endpoint has a curl example, and every example runs against the app."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "api.md").read_text()
CAPTURE = re.compile(r"^(\w+)=\$\((curl .*)\|\s*jq -r \.(\w+)\)$", re.S)


def examples() -> list[tuple[str | None, str | None, str]]:
    """(variable, field, curl command) per example; variable and field for `VAR=$(curl ... | jq -r .field)`."""
    text = "\n".join(re.findall(r"```sh\n(.*?)```", DOC, re.S)).replace("\\\n", " ")
    found: list[tuple[str | None, str | None, str]] = []
    pending = ""
    for line in text.splitlines():
        pending = f"{pending}\n{line}" if pending else line.strip()
        try:
            shlex.split(pending)
        except ValueError:  # a quoted argument (a JSON body) goes on over the next line
            continue
        captured = CAPTURE.match(pending)
        if captured:
            found.append((captured.group(1), captured.group(3), captured.group(2)))
        elif pending.startswith("curl "):
            found.append((None, None, pending))
        pending = ""
    return found


def parse(command: str, variables: dict[str, str]) -> dict:
    args = shlex.split(command)[1:]
    for name, value in variables.items():
        args = [arg.replace(f"${name}", value) for arg in args]
    call = {"method": None, "headers": {}, "data": None, "form": None, "url": None}
    i = 0
    while i < len(args):
        arg, value = args[i], args[i + 1] if i + 1 < len(args) else ""
        if arg == "-X":
            call["method"] = value
        elif arg == "-H":
            name, _, header = value.partition(":")
            if name != "$AUTH":
                call["headers"][name.strip()] = header.strip()
        elif arg in ("-d", "--data-binary"):
            call["data"] = (ROOT / value[1:]).read_bytes() if value.startswith("@") else value.encode()
        elif arg == "-F":
            key, _, field = value.partition("=")
            form = call["form"] = call["form"] or {}
            form[key] = (
                (io.BytesIO((ROOT / field[1:]).read_bytes()), field[1:]) if field.startswith("@") else field
            )
        elif arg.startswith("-"):
            i += 1
            continue
        else:
            call["url"] = arg
            i += 1
            continue
        i += 2
    call["method"] = call["method"] or ("POST" if call["data"] or call["form"] else "GET")
    return call


def test_every_operation_has_a_curl_example(open_app):
    document = open_app.test_client().get("/api/openapi.json").get_json()
    shown = set()
    for _, _, command in examples():
        call = parse(command, {"SESSION": "{x}", "EXECUTION": "{x}", "EVAL": "{x}", "CURSOR": ""})
        shown.add((call["method"].lower(), urlsplit("http://" + call["url"]).path))
    for path, operations in document["paths"].items():
        for method in operations:
            assert (method, re.sub(r"\{[^}]+\}", "{x}", path)) in shown, (
                f"no curl example for {method} {path}"
            )


def test_every_example_runs(client):
    variables: dict[str, str] = {}
    for variable, field, command in examples():
        call = parse(command, variables)
        assert "$" not in call["url"], f"{command}: uses a variable no earlier example set"
        body = call["form"] if call["form"] is not None else call["data"]
        url = call["url"].replace("localhost:8000", "")
        response = client.open(url, method=call["method"], headers=call["headers"], data=body)
        assert response.status_code < 400, (command, response.get_data(as_text=True)[:300])
        if variable:
            variables[variable] = str(response.get_json()[field])
