"""A trace's fingerprint: the same requests give the same print, any change a new one."""

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from traces.fingerprint import trace_fingerprint


def trace(n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": np.sort(rng.uniform(0, 10, n)),
            "prompt_tokens": rng.integers(1, 100, n),
            "output_tokens": rng.integers(1, 100, n),
        }
    )


@given(st.integers(0, 2**32 - 1))
def test_row_order_and_extra_columns_do_not_change_it(seed):
    df = trace(seed=seed % 1000)
    shuffled = df.sample(frac=1.0, random_state=seed).assign(score_x=1.0, prompt="hi")
    assert trace_fingerprint(shuffled) == trace_fingerprint(df)


def test_any_replayed_field_changes_it():
    df = trace()
    base = trace_fingerprint(df)
    assert len(base) == 16 and base == trace_fingerprint(trace())
    for col, value in (
        ("request_id", 99),
        ("arrival_s", 9.5),
        ("prompt_tokens", 7),
        ("output_tokens", 7),
    ):
        changed = df.copy()
        changed.loc[3, col] = value
        assert trace_fingerprint(changed) != base, col
    assert trace_fingerprint(df.iloc[:-1]) != base
