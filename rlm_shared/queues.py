"""Queue and task names shared by the API (which enqueues) and the workers (which consume)."""

ROOT_QUEUE = "rlm.root"
LLM_QUEUE = "rlm.llm"
RUN_EXECUTION_TASK = "rlm.run_execution"
LLM_CALLS_TASK = "rlm.llm_calls"
