import numpy as np
import pandas as pd
import pytest

from sim.profile import StepTimeProfile


def make_trace(n: int, rate: float, seed: int = 0, prompt=(10, 1000), output=(1, 800)):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": np.cumsum(rng.exponential(1 / rate, n)),
            "prompt_tokens": rng.integers(prompt[0], prompt[1], n),
            "output_tokens": rng.integers(output[0], output[1], n),
        }
    )


def fixed_profile(**coeffs) -> StepTimeProfile:
    base = dict(
        c0_s=0.0,
        prefill_token_s=0.0,
        prefill_sq_s=0.0,
        decode_req_s=0.0,
        decode_ctx_token_s=0.0,
        swap_block_s=0.0,
    )
    base.update(coeffs)
    return StepTimeProfile(name="test", source="first-principles", **base)


@pytest.fixture
def h100():
    from sim.profile import load_profile

    return load_profile()
