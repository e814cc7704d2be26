"""The learning-to-rank output-length predictor (Fu et al., 2024): a small backbone
(OPT or MiniLM) with a one-number head, trained with ListMLE so that its score orders
prompts by output length (higher score = predicted shorter, the paper's sign).

Beside the ranking losses, a distributional head (`--loss nll`, or `--loss quantile`)
predicts per prompt a distribution over output length on the fixed bins of
policies/lengthdist.py, starting from the training set's marginal histogram. Its score is
minus the predicted median in tokens, so it ranks like any other; `predictor score` also
writes its bin probabilities as dist_<name>_NN columns, and `predictor eval` adds the
coverage of its central 50% and 90% intervals, the log-likelihood of the true bin and the
CRPS in tokens (defined in metrics.py), next to the marginal histogram as a baseline.

Importing this package does not import torch; the modules that train and score do.
"""

from predictor.errors import PredictorError

__all__ = ["PredictorError"]
