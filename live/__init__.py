"""Live mode: the same traces and policies against a real vLLM.

- `live.scheduler`: the vLLM V1 scheduler plug-in (`scheduler_cls="live.scheduler.PolicyScheduler"`)
  that orders requests with any policy from policies/ and logs every engine step;
- `live.engine` / `live.server`: replay a trace open-loop on an in-process AsyncLLM or on
  a running `vllm serve`, writing the run schema of traces/results.py;
- `live.fleet`: N in-process engines behind a router from policies/routing, loads from
  vLLM's SchedulerStats and prefix caches from its KV events (`live.kv_events`);
- `live.calibrate`: fit sim/'s step-time model from the logged steps.

Only `live.scheduler`, `live.engine` and `live.server` import vLLM; the rest works without it.
"""
