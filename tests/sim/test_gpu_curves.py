"""Measured GPU curves in the roofline: the curve's arithmetic by hand, the shipped facts and
their provenance, the measured step-time terms (GEMMs, grouped expert GEMMs, all-reduce)
worked by hand, bit-identical scalar and array calls, and the labels that say what a
profile rests on."""

import json
import re
from importlib import resources

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ltrsched.cli import main
from sim.errors import SimError
from sim.gpu_curves import AllreduceCurve, LinearCurve, datasheet_error_pct, load_gpu_curves
from sim.models import arch_from_config
from sim.profile import MEASURED_TABLE_TOKENS, experts_touched_table, profile_from_dict
from sim.roofline import Factors, build_roofline, profile_header

TINY = {
    "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "max_position_embeddings": 4096,
}
TINY_MOE = {
    **TINY, "model_type": "mixtral", "num_key_value_heads": 4, "intermediate_size": 32,
    "num_local_experts": 4, "num_experts_per_tok": 2,
}
GPU = {"peak_tflops": {"bf16": 1.0, "fp16": 1.0, "fp8": 2.0}, "memory_bandwidth_tb_s": 1.0,
       "memory_gib": 1, "interconnect_gb_s": 100, "host_link_gb_s": 50, "source": "test"}
ONES = {"gemm_flops_share": 1.0, "attention_flops_share": 1.0, "memory_bandwidth_share": 1.0,
        "interconnect_share": 1.0, "allreduce_latency_s": 1e-5, "step_overhead_s": 1e-3}
FACTORS = Factors(ONES, request_overhead_s=0.002, non_torch_memory_bytes=0.125 * 1024**3)
# A flat curve: 1 TFLOP/s at every token count, 1 TB/s, 1 us per kernel.
FLAT = {"gemm_tokens": [1.0, 4.0], "gemm_flops_s": [1e12, 1e12],
        "weight_bandwidth_bytes_s": 1e12, "kernel_s": 1e-6, "weight_dtype_bytes": 2.0}


def tiny_profile(tmp_path, cfg=TINY, measured=None, tp=1):
    gpu = tmp_path / "gpu.yaml"
    gpu.write_text(yaml.safe_dump(GPU))
    d = build_roofline(arch_from_config(dict(cfg), name="tiny"), str(gpu), tp=tp,
                       factors=FACTORS, max_model_len=4096, gpu_memory_utilization=0.5,
                       max_num_batched_tokens=1024)
    assert "measured" not in d  # a user's GPU file has no measured curves
    if measured is not None:
        d["measured"] = measured
    return d


# ---------------------------------------------------------------- the curve by hand


def test_linear_curve_by_hand():
    c = LinearCurve(tokens=(1.0, 4.0), flops_s=(1e12, 4e12), weight_bandwidth_bytes_s=1e12,
                    kernel_s=1e-6)
    assert c.flops_at(2) == pytest.approx(2e12)  # halfway in log2(tokens): the geometric mean
    assert c.flops_at(0.5) == pytest.approx(1e12) and c.flops_at(100) == pytest.approx(4e12)
    # 2 tokens x (1000 x 1000): 4 MFLOP at 2 TFLOP/s = 2 us < 2.008 MB at 1 TB/s
    assert c.gemm_s(2, 1000, 1000) == pytest.approx(1e-6 + 2.008e-6)
    # 100 tokens: 200 MFLOP at 4 TFLOP/s = 50 us > 2.4 MB / 1 TB/s
    assert c.gemm_s(100, 1000, 1000) == pytest.approx(1e-6 + 50e-6)
    assert AllreduceCurve(4, 2e-5, 1e11).time_s(1e6) == pytest.approx(2e-5 + 1e-5)


def test_shipped_curves_name_their_source_and_rise_with_tokens():
    text = resources.files("sim").joinpath("data", "gpu_curves.json").read_text()
    facts = json.loads(text)
    assert facts["source"]["repo"] == "microsoft/vidur"
    assert re.fullmatch(r"[0-9a-f]{40}", facts["source"]["commit"])
    for gpu in ("H100-SXM", "A100-80GB", "A40"):
        c = load_gpu_curves(gpu)
        assert c is not None and c.linear is not None and "microsoft/vidur" in c.source
        f = np.asarray(c.linear.flops_s)
        assert np.all(np.diff(f) >= 0)  # small decode batches far from peak, prefill near it
        entry = facts["gpus"][gpu]
        assert entry["held_out"]["model"] not in entry["derived_from"]  # held out by model
        assert c.operator_error_pct < entry["held_out"]["datasheet_median_abs_error_pct"]
    assert set(load_gpu_curves("H100-SXM").allreduce) == {2, 4, 8}
    assert load_gpu_curves("A40").allreduce == {}  # Vidur published no A40 all-reduce
    assert load_gpu_curves("L40S") is None and datasheet_error_pct() > 0


# ---------------------------------------------------------------- measured step terms


def test_measured_gemm_term_by_hand(tmp_path):
    m = {**FLAT, "linear_ops": [[64.0, 128.0, 2.0]], "expert_ops": [], "lm_head": [64.0, 100.0]}
    prof = profile_from_dict(tiny_profile(tmp_path, measured=m))
    # One decode token, no context: 1 ms step overhead, KV write of 256 B at 1 TB/s, and
    # two 64x128 GEMMs (1 us + 16.768 KB / 1 TB/s each, memory-bound) and the LM head
    # (1 us + 13.128 KB / 1 TB/s).
    gemms = 2 * (1e-6 + (2 * 64 * 128 + 2 * (64 + 128)) / 1e12)
    head = 1e-6 + (2 * 64 * 100 + 2 * (64 + 100)) / 1e12
    assert prof.step_time(0, 0, 1, 0) == pytest.approx(1e-3 + 256 / 1e12 + gemms + head)
    # A 1000-token prefill: no LM head, compute-bound GEMMs 2 x 1000 x 64 x 128 at 1 TFLOP/s
    t = prof.step_time(1000, 1000**2, 0, 0)
    attention = max(prof.roofline["attention_flops_per_pair"] * 0.5 * (1000**2 + 1000) / 1e12,
                    256 * 1000 / 1e12)
    assert t == pytest.approx(1e-3 + 2 * (1e-6 + 2 * 1000 * 64 * 128 / 1e12) + attention)


def test_routed_experts_are_a_grouped_gemm_of_the_tokens_each_touched_expert_gets(tmp_path):
    m = {**FLAT, "linear_ops": [], "expert_ops": [[64.0, 64.0, 2.0]], "lm_head": [1.0, 1.0]}
    prof = profile_from_dict(tiny_profile(tmp_path, TINY_MOE, measured=m))
    # 3 tokens, top-2 of 4 experts: 4 (1 - (1 - 2/4)^3) = 3.5 experts touched per layer,
    # each multiplying 3 x 2 / 3.5 = 12/7 tokens.
    assert experts_touched_table(4, 2)[3] == pytest.approx(3.5)
    # One fused kernel per layer and projection (its 1 us once), 3.5 experts' work in it.
    per_expert = 12 / 7
    work = max(2 * per_expert * 64 * 64 / 1e12, (2 * 64 * 64 + 2 * per_expert * 128) / 1e12)
    head = 1e-6 + (2 + 2 * 2) / 1e12
    kv = prof.roofline["kv_bytes_per_token"] * 3 / 1e12
    assert prof.step_time(0, 0, 3, 0) == pytest.approx(1e-3 + 2 * (1e-6 + 3.5 * work) + head + kv)


def test_grouped_expert_gemms_of_few_tokens_run_far_from_peak(tmp_path):
    # F rises 100x from 1 to 64 tokens: 8 tokens routed top-2 over the ~3.98 experts they
    # touch (about 4 tokens each) cost more than the same FLOPs as one 16-token GEMM.
    rising = {**FLAT, "gemm_tokens": [1.0, 64.0], "gemm_flops_s": [1e10, 1e12], "kernel_s": 0.0,
              "weight_bandwidth_bytes_s": 1e15}
    grouped = profile_from_dict(tiny_profile(
        tmp_path, TINY_MOE, measured={**rising, "linear_ops": [], "lm_head": [1.0, 1.0],
                                      "expert_ops": [[64.0, 64.0, 1.0]]}))
    c = LinearCurve((1.0, 64.0), (1e10, 1e12), 1e15, 0.0)
    e_t = 4 * (1 - 0.5**8)
    kv = grouped.roofline["kv_bytes_per_token"] * 8 / 1e12
    expected = e_t * c.gemm_s(8 * 2 / e_t, 64, 64) + c.gemm_s(8, 1, 1)
    assert grouped.step_time(0, 0, 8, 0) == pytest.approx(1e-3 + expected + kv)
    assert e_t * c.gemm_s(8 * 2 / e_t, 64, 64) > 1.5 * c.gemm_s(16, 64, 64)


def test_tensor_parallel_all_reduce_from_the_measured_collective():
    # By default vLLM's custom all-reduce is priced (fitted latency, the link's rate): the
    # measured NCCL collective only on request.
    assert "allreduce" not in build_roofline("llama-3.1-70b", "H100-SXM", tp=4,
                                             max_model_len=8192)["measured"]
    d = build_roofline("llama-3.1-70b", "H100-SXM", tp=4, max_model_len=8192,
                       measured_allreduce=True)
    ar = load_gpu_curves("H100-SXM").allreduce[4]
    assert d["measured"]["allreduce"] == {"latency_s": ar.latency_s,
                                          "bandwidth_bytes_s": ar.bandwidth_bytes_s, "tp": 4}
    without = {**d, "measured": {k: v for k, v in d["measured"].items() if k != "allreduce"}}
    with_ar, no_ar = profile_from_dict(d), profile_from_dict(without)
    # 160 all-reduces (2 per layer, 80 layers) of 8 tokens x 8192 x 2 B each
    extra = with_ar.step_time(0, 0, 8, 8000) - no_ar.step_time(0, 0, 8, 8000)
    datasheet_ring = no_ar._k[7] + no_ar._k[8] * 8
    assert extra == pytest.approx(160 * ar.latency_s + 160 * 8 * 8192 * 2 / ar.bandwidth_bytes_s
                                  - datasheet_ring)


@settings(max_examples=40, deadline=None)
@given(moe=st.booleans(),
       rows=st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 300),
                               st.integers(0, 10**6)), min_size=1, max_size=30))
def test_measured_scalar_and_array_calls_give_identical_floats(moe, rows, tmp_path_factory):
    m = {**FLAT, "gemm_tokens": [1.0, 16.0, 256.0], "gemm_flops_s": [1e10, 1e11, 1e12],
         "linear_ops": [[64.0, 128.0, 2.0], [128.0, 64.0, 2.0]], "lm_head": [64.0, 100.0],
         "expert_ops": [[64.0, 64.0, 2.0]] if moe else []}
    prof = profile_from_dict(tiny_profile(tmp_path_factory.mktemp("g"),
                                          TINY_MOE if moe else TINY, measured=m))
    pre, dec, ctx = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    arr = prof.step_time(pre, pre * pre, dec, ctx, 0, pre * 3)
    one = [prof.step_time(int(p), int(p) * int(p), int(d), int(c), 0, int(p) * 3)
           for p, d, c in rows]
    assert arr.tolist() == one
    big = [p + d for p, d, _ in rows if p + d > MEASURED_TABLE_TOKENS]
    if big:  # past the table the GEMM time keeps growing
        assert prof.step_time(max(big), 0, 0, 0) > prof.step_time(MEASURED_TABLE_TOKENS, 0, 0, 0)


def test_measured_h100_profile_tracks_the_held_out_operator_curve():
    d = build_roofline("codellama-34b", "H100-SXM", tp=2, max_model_len=8192)
    m = d["measured"]
    assert m["held_out_model"].endswith("CodeLlama-34b-Instruct-hf")
    # GEMMs per rank and step: QKV and output over 48 layers, gated MLP up and down
    assert m["linear_ops"] == [[8192.0, 4096.0 + 2 * 512.0, 48.0], [4096.0, 8192.0, 48.0],
                               [8192.0, 22016.0, 48.0], [11008.0, 8192.0, 48.0]]
    assert m["lm_head"] == [8192.0, 16000.0]


@pytest.mark.parametrize(("change", "needle"), [
    ({"kernel_s": -1}, "measured.kernel_s must be a number > 0"),
    ({"gemm_tokens": [4.0, 1.0]}, "measured.gemm_tokens and gemm_flops_s must be lists"),
    ({"linear_ops": [[1, 2]]}, "measured.linear_ops must be a list of [k, n, count]"),
    ({"allreduce": {"latency_s": 1e-5}}, "measured.allreduce must hold latency_s"),
])
def test_bad_measured_sections_name_the_key(tmp_path, change, needle):
    m = {**FLAT, "linear_ops": [], "lm_head": [1.0, 1.0], **change}
    with pytest.raises(SimError, match=re.escape(needle)):
        profile_from_dict(tiny_profile(tmp_path, measured=m), "p.yaml")


# ---------------------------------------------------------------- labels


def test_profiles_say_what_they_rest_on(tmp_path, capsys):
    measured = build_roofline("llama-2-7b", "H100-SXM", max_model_len=4096)
    head = profile_header(measured)
    assert "# GPU: measured curves of H100-SXM" in head and "microsoft/vidur" in head
    assert "on measured GPU curves" in profile_from_dict(measured).label
    sheet = build_roofline("llama-2-7b", "L40S", max_model_len=4096)
    assert "measured" not in sheet
    assert f"datasheet only: no kernel measurements of L40S; expect about " \
           f"{datasheet_error_pct():g}%" in profile_header(sheet)
    off = build_roofline("llama-2-7b", "H100-SXM", max_model_len=4096, measured_curves=False)
    assert "measured curves not used" in off["estimate"]["grounding"]
    out = tmp_path / "p.yaml"
    rc = main(["profile", "roofline", "--model", "llama-2-7b", "--gpu", "A100-80GB",
               "--max-model-len", "4096", "--datasheet-only", "-o", str(out)])
    assert rc == 0 and "datasheet only" in capsys.readouterr().out
    text = out.read_text()
    assert "--datasheet-only -o" in text and "# GPU: datasheet only" in text
