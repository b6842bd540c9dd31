"""`python -m rlm_api.cli` is `rlm`, for machines where pip's script folder is not on PATH."""

from rlm_api.cli import main

main()
