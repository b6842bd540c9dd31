#!/usr/bin/env bash
# One command: a Letta server (its own venv, SQLite), a scripted model, `rlm serve`; Letta registers
# RLM Engine's MCP server over Streamable HTTP, an agent asks a question through it, and the script
# checks the answer and that the execution carries the Letta agent's id.
#
#   examples/letta/run.sh            # from the repository, with `rlm` installed (the project's venv)
#
# LETTA_VENV (default examples/letta/.venv) is made on first use: `letta[server,sqlite]==0.11.7`,
# about 1.5 min and 0.9 GB. Letta needs a venv of its own (its mcp, pydantic and openai pins clash
# with RLM Engine's lock), and 0.11.7 is the last Letta server that runs on SQLite.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LETTA_VENV="${LETTA_VENV:-$HERE/.venv}"
RLM="${RLM:-$(command -v rlm || true)}"
[ -n "$RLM" ] || { echo "rlm is not on PATH: activate the project's venv (README, Quick start)" >&2; exit 2; }
PYTHON="${PYTHON:-python3}"

if [ ! -x "$LETTA_VENV/bin/letta" ]; then
  echo "[letta example] making $LETTA_VENV (letta[server,sqlite]==0.11.7; ~1.5 min, 0.9 GB)"
  "$PYTHON" -m venv "$LETTA_VENV"
  "$LETTA_VENV/bin/pip" install -q --upgrade pip  # the pip venv ships (23.x) cannot resolve letta's extras
  "$LETTA_VENV/bin/pip" install -q 'letta[server,sqlite]==0.11.7' -c "$HERE/constraints.txt"
fi

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MODEL_PORT=$(free_port); RLM_PORT=$(free_port); LETTA_PORT=$(free_port)
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_http() {  # url, what, seconds: until it answers, or its process (the last started) died
  for _ in $(seq 1 "$3"); do
    if curl -s -o /dev/null "$1"; then return 0; fi
    kill -0 "${PIDS[-1]}" 2>/dev/null || break
    sleep 1
  done
  echo "[letta example] FAILED: $2 did not answer at $1; its log:" >&2
  tail -n 40 "$WORK/$2.log" >&2
  exit 1
}

"$PYTHON" "$HERE/scripted_model.py" --port "$MODEL_PORT" > "$WORK/model.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$MODEL_PORT/v1/models" model 30

TOKEN="letta-example-$RANDOM$RANDOM"
env -u DATABASE_URL -u DISPATCH -u CELERY_BROKER_URL -u MODEL_ALLOWLIST \
  XDG_DATA_HOME="$WORK/rlm-data" PORT="$RLM_PORT" API_TOKENS="$TOKEN" \
  LLM_API_BASE="http://127.0.0.1:$MODEL_PORT/v1" LLM_API_KEY=scripted \
  DEFAULT_MODEL=openai/scripted-root SUB_MODEL=openai/scripted-sub LITELLM_LOCAL_MODEL_COST_MAP=True \
  "$RLM" serve > "$WORK/rlm.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$RLM_PORT/api/health" rlm 90
echo "[letta example] rlm serve on 127.0.0.1:$RLM_PORT, scripted model on 127.0.0.1:$MODEL_PORT"

# HOME: Letta keeps its SQLite database and settings under ~/.letta; a fresh one per run. It
# writes openapi_letta.json into its working directory: the scratch folder, not the repository.
mkdir -p "$WORK/letta-home"
(cd "$WORK/letta-home" && exec env -i PATH="$LETTA_VENV/bin:/usr/bin:/bin" HOME="$WORK/letta-home" LANG=C.UTF-8 \
  OPENAI_API_KEY=scripted OPENAI_API_BASE="http://127.0.0.1:$MODEL_PORT/v1" \
  "$LETTA_VENV/bin/letta" server --host 127.0.0.1 --port "$LETTA_PORT") > "$WORK/letta.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$LETTA_PORT/v1/health/" letta 180
echo "[letta example] letta $("$LETTA_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("letta"))') server on 127.0.0.1:$LETTA_PORT (SQLite)"

LETTA_URL="http://127.0.0.1:$LETTA_PORT" RLM_URL="http://127.0.0.1:$RLM_PORT" RLM_TOKEN="$TOKEN" \
  MODEL_URL="http://127.0.0.1:$MODEL_PORT/v1" "$PYTHON" "$HERE/drive.py"
