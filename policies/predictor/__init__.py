"""The learning-to-rank output-length predictor (Fu et al., 2024): a small backbone
(OPT or MiniLM) with a one-number head, trained with ListMLE so that its score orders
prompts by output length (higher score = predicted shorter, the paper's sign).

Importing this package does not import torch; the modules that train and score do.
"""

from policies.predictor.errors import PredictorError

__all__ = ["PredictorError"]
