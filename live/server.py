"""Replay against a running `vllm serve --scheduler-cls live.scheduler.PolicyScheduler`
over its OpenAI-compatible completions API, streaming, prompts as token ids."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import aiohttp

from live.errors import LiveError
from live.records import FINISHED, RequestRecord, check_length
from live.replay import Rejected

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def is_local(url: str) -> bool:
    """Whether the server shares this machine (its clock, its files)."""
    host = urlparse(url).hostname or ""
    return host in LOCAL_HOSTS or host.startswith("127.")


class ServerBackend:
    """Streams /v1/completions; per-request times are when tokens reach the driver."""

    def __init__(self, url: str, model: str, session: aiohttp.ClientSession) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.session = session

    def begin(self, run_id: str, t0: float) -> None:
        pass

    @classmethod
    async def connect(cls, url: str, model: str | None, stall_timeout_s: float
                      ) -> tuple[ServerBackend, dict[str, Any]]:
        """Open a session and check the server answers; LiveError when it does not."""
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=stall_timeout_s)
        session = aiohttp.ClientSession(timeout=timeout)
        base = url.rstrip("/")
        try:
            async with session.get(f"{base}/v1/models") as r:
                if r.status != 200:
                    raise LiveError(f"--server {url}: /v1/models answered HTTP {r.status}")
                cards = (await r.json()).get("data", [])
                models = [m["id"] for m in cards]
            version = None
            async with session.get(f"{base}/version") as r:
                if r.status == 200:
                    version = (await r.json()).get("version")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            await session.close()
            raise LiveError(f"--server {url}: cannot reach it ({type(e).__name__}: {e})"
                            ) from None
        except LiveError:
            await session.close()
            raise
        if model is None:
            if not models:
                await session.close()
                raise LiveError(f"--server {url}: serves no model")
            model = models[0]
        card = next((c for c in cards if c["id"] == model), {})
        info = {"mode": "server", "server": base, "model": model, "vllm_version": version,
                "max_model_len": card.get("max_model_len")}
        return cls(base, model, session), info

    async def reset_prefix_cache(self) -> bool:
        """Empty the server's prefix cache before a run; vLLM serves the endpoint only
        with VLLM_SERVER_DEV_MODE=1, so False (left as it was) is a common answer."""
        try:
            async with self.session.post(f"{self.url}/reset_prefix_cache") as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def close(self) -> None:
        await self.session.close()

    async def send(self, rec: RequestRecord, prompt_ids: list[int], xargs: dict[str, Any],
                   clock: Callable[[], float]) -> None:
        body = {
            "model": self.model, "prompt": prompt_ids, "max_tokens": rec.output_tokens,
            "ignore_eos": True, "stream": True, "return_token_ids": True,
            "stream_options": {"include_usage": True}, "vllm_xargs": xargs,
        }
        finished = False
        async with self.session.post(f"{self.url}/v1/completions", json=body) as resp:
            if resp.status == 400:
                raise Rejected(_error_text(await resp.text()))
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {_error_text(await resp.text())}")
            async for raw in resp.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    raise RuntimeError(_error_text(json.dumps(chunk)))
                details = (chunk.get("usage") or {}).get("prompt_tokens_details") or {}
                if details.get("cached_tokens") is not None:  # --enable-prompt-tokens-details
                    rec.cached_tokens = int(details["cached_tokens"])
                for choice in chunk.get("choices") or ():
                    ids = choice.get("token_ids")
                    n = len(ids) if ids is not None else (1 if choice.get("text") else 0)
                    rec.on_tokens(n, clock(), ids)
                    finished |= choice.get("finish_reason") is not None
        if not finished:
            raise RuntimeError("the stream ended without a finish reason")
        check_length(rec)
        rec.finish_s = rec.last_token_s
        rec.status = FINISHED


def _error_text(body: str) -> str:
    try:
        err = json.loads(body)
        err = err.get("error", err) if isinstance(err, dict) else err
        msg = err.get("message", body) if isinstance(err, dict) else str(err)
    except ValueError:
        msg = body
    return str(msg).splitlines()[0][:300] if msg else "(empty response)"
