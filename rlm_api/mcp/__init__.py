"""The MCP server: RLM Engine's tools for agents (Letta, Claude Desktop, Cursor) over the Model
Context Protocol, on the official `mcp` SDK.

- `tools.py` builds the server and its tools; each tool runs the same functions as the API
  (`actions.py`), inside the Flask app, as the calling token's owner;
- `http.py` serves it at `/mcp` on the API (Streamable HTTP, bearer tokens like `/api`);
- `rlm mcp` (rlm_api/cli/mcp.py) serves it over stdio, in embedded mode, as the local user;
- `files.py` keeps `ask_about_files` inside `MCP_FILES_ROOT`.
"""
