"""`rlm eval` and `POST /api/evals`: how well, how cheaply and how fast a configuration answers.

The RLM paper's question, asked of this engine: does a root model (or a strategy, or your own
root program) with a sub-model answer better than the base model alone, on inputs far past the
model's window, and at what price? Every item runs as an ordinary execution, so it fans out,
is traced and shows in the dashboard; the base model's baseline is an execution too (one direct
call over the input cut to the model's window).

One job per module: `tasks/` makes the items (reproducibly, from a seed), `scorers` scores an
answer the way each task's paper does, `configs` reads what to compare, `runner` submits and
collects, `store` keeps runs and items in the database, `report` tabulates, `plot` draws.
"""
