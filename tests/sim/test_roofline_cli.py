"""`ltrsched profile roofline` and `ltrsched profile fit` end to end: files, labels, and
one-line errors for bad input."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from ltrsched.cli import main
from sim.fit import apply_knobs, engine_config_for, synthetic_bench
from sim.profile import load_profile
from traces.io import write_trace


def roofline(tmp_path, *args):
    out = tmp_path / "p.yaml"
    return main(["profile", "roofline", "-o", str(out), *args]), out


def test_roofline_writes_a_profile_that_simulate_labels_an_estimate(tmp_path, capsys):
    rc, out = roofline(tmp_path, "--model", "qwen2.5-7b", "--gpu", "H100-SXM",
                       "--max-model-len", "4096", "--max-num-seqs", "128",
                       "--max-num-batched-tokens", "2048")
    text = capsys.readouterr().out
    assert rc == 0 and "ESTIMATE" in text and "num_gpu_blocks 65278" in text
    prof = load_profile(str(out))
    assert prof.form == "roofline" and prof.engine["max_num_batched_tokens"] == 2048
    # the header says how to make the file again, every option spelled out
    made = [x for x in out.read_text().splitlines() if x.startswith("# made by: ")]
    assert made == [
        f"# made by: ltrsched profile roofline --model qwen2.5-7b --gpu H100-SXM --tp 1 "
        f"--gpu-memory-utilization 0.9 --max-model-len 4096 --block-size 16 --max-num-seqs 128 "
        f"--max-num-batched-tokens 2048 -o {out} (factors: sim/data/roofline_factors.yaml)"
    ]
    again = tmp_path / "again.yaml"
    argv = made[0].removeprefix("# made by: ltrsched ").split(" (factors")[0].split()
    assert main([*argv[:-1], str(again)]) == 0
    capsys.readouterr()
    assert again.read_text().replace(str(again), "X") == out.read_text().replace(str(out), "X")
    trace = tmp_path / "t.parquet"
    write_trace(pd.DataFrame({"request_id": range(20), "arrival_s": np.arange(20) * 0.1,
                              "prompt_tokens": 100, "output_tokens": 20}), trace,
                {"source": "test"})
    assert main(["simulate", "--trace", str(trace), "--profile", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["completed"] == 20 and "ESTIMATE" in summary["profile_label"]
    assert summary["num_gpu_blocks"] == 65278
    assert summary["engine"]["max_model_len"] == 4096  # the profile's, like its other limits
    long = tmp_path / "long.parquet"
    write_trace(pd.DataFrame({"request_id": range(3), "arrival_s": [0.0, 0.1, 0.2],
                              "prompt_tokens": [100, 4000, 100], "output_tokens": [20, 97, 20]}),
                long, {"source": "test"})
    assert main(["simulate", "--trace", str(long), "--profile", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["completed"], summary["rejected"]) == (2, 1)  # 4,097 > 4,096 tokens
    assert main(["simulate", "--trace", str(long), "--profile", str(out), "--json",
                 "--max-model-len", "8192"]) == 0
    assert json.loads(capsys.readouterr().out)["completed"] == 3  # the option wins


def test_roofline_takes_a_config_directory_and_a_gpu_file(tmp_path, capsys):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 512, "vocab_size": 1000,
        "max_position_embeddings": 2048, "torch_dtype": "float16"}))
    gpu = tmp_path / "mygpu.yaml"
    gpu.write_text(yaml.safe_dump({"peak_tflops": {"fp16": 100}, "memory_bandwidth_tb_s": 1,
                                   "memory_gib": 16, "interconnect_gb_s": 64}))
    rc, out = roofline(tmp_path, "--model", str(model), "--gpu", str(gpu), "--tp", "2")
    assert rc == 0, capsys.readouterr().err
    prof = load_profile(str(out))
    assert prof.gpu == "mygpu" and prof.roofline["tp"] == 2 and "fp16" in prof.name


@pytest.mark.parametrize(("args", "needle"), [
    (["--model", "llama-3.1-8b", "--gpu", "V100"],
     "--gpu: unknown GPU 'V100'; known: H100-SXM, H100-PCIe, H200, A100-80GB, A100-40GB, A40, "
     "L40S, L4, A10G, RTX-4090, B200, MI300X"),
    (["--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--tp", "3"],
     "--tp 3 does not divide llama-3.1-8b's 32 attention heads"),
    (["--model", "llama-2-70b", "--gpu", "A100-80GB"],
     "llama-2-70b does not fit: 128.5 GiB of fp16 weights"),
    (["--model", "nope-7b", "--gpu", "H100-SXM"], "--model: no such file or bundled model"),
    (["--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--dtype", "int4"], "--dtype: choose one"),
    (["--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--max-model-len", "0"],
     "--max-model-len: must be >= 1, got 0"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, needle):
    rc, out = roofline(tmp_path, *args)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_config_without_the_needed_fields_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    rc, _ = roofline(tmp_path, "--model", str(cfg), "--gpu", "L4")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "missing or non-positive num_hidden_layers, num_attention_heads, vocab_size" in err


def test_fit_writes_the_fitted_profile_with_its_errors(tmp_path, capsys):
    assert roofline(tmp_path, "--model", "llama-3.1-8b", "--gpu", "H100-SXM",
                    "--max-model-len", "8192")[0] == 0
    src = tmp_path / "p.yaml"
    base = load_profile(str(src))
    true = apply_knobs(base, {"compute": 0.8, "request_overhead_s": 0.02})
    rng = np.random.default_rng(5)
    n = 40
    df = pd.DataFrame({"request_id": np.arange(n), "arrival_s": 0.0,
                       "prompt_tokens": rng.integers(50, 1500, n),
                       "output_tokens": rng.integers(2, 100, n)})
    trace = tmp_path / "t.parquet"
    write_trace(df, trace, {"source": "test"})
    paths = []
    for rate in (2.0, 10.0, 5.0):
        p = tmp_path / f"bench_{rate:g}.json"
        p.write_text(json.dumps(synthetic_bench(true, df, rate, n, engine_config_for(base))))
        paths.append(str(p))
    capsys.readouterr()
    out = tmp_path / "fitted.yaml"
    rc = main(["profile", "fit", "--bench", paths[0], "--bench", paths[1], "--holdout",
               paths[2], "--trace", str(trace), "--from", str(src), "-o", str(out),
               "--max-evals", "25"])
    text = capsys.readouterr().out
    assert rc == 0 and "held out" in text and "median |error|" in text
    fitted = yaml.safe_load(out.read_text())
    assert out.read_text().startswith("# FIRST-PRINCIPLES ESTIMATE fitted")
    assert set(fitted["fit_error"]["fitted"]) == set(paths[:2])
    assert list(fitted["fit_error"]["holdout"]) == [paths[2]]
    assert [b["bench"] for b in fitted["fitted_from"]] == paths[:2]
    prof = load_profile(str(out))
    assert "fitted to bench results" in prof.label and prof.request_overhead_s > 0.005
    assert fitted["fit_error"]["holdout_median_abs"]["mean_ttft_ms"] < 0.1


@pytest.mark.parametrize(("bench", "needle"), [
    ("not json", "not JSON"),
    (json.dumps({"request_rate": 4, "num_prompts": 10, "mean_ttft_ms": 5,
                 "max_concurrency": 8}), "max_concurrency 8"),
    (json.dumps({"request_rate": 4, "num_prompts": 100, "mean_ttft_ms": 5}),
     "num_prompts 100 but the trace has 10 rows"),
])
def test_fit_bad_bench_is_one_line(tmp_path, capsys, bench, needle):
    b = tmp_path / "b.json"
    b.write_text(bench)
    trace = tmp_path / "t.parquet"
    write_trace(pd.DataFrame({"request_id": range(10), "arrival_s": 0.0, "prompt_tokens": 10,
                              "output_tokens": 5}), trace, {"source": "test"})
    rc = main(["profile", "fit", "--bench", str(b), "--trace", str(trace), "--from",
               "llama3-8b_h100_first-principles", "-o", str(tmp_path / "o.yaml")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1, err
