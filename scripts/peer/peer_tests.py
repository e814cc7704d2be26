"""The peer suite: vLLM's own scheduler tests, run against the ltrsched plug-in.

    python scripts/peer/peer_tests.py [--policy fcfs] [--no-verdict] [--keep DIR]

Fetches the source distribution of the installed vLLM from the package index (cached
under ~/.cache/ltrsched/vllm-sdist, checked against the index's sha256), extracts the
scheduler tests (SUITE) and the helpers they import into a temporary directory, writes
offline stand-ins for the models they name (standins.py), and runs them twice: under
vLLM's own scheduler (the baseline) and with every Scheduler/AsyncScheduler they build
replaced by our plug-in with the policy given (ltrsched_peer.py). The verdict: the tests
that pass under vLLM's scheduler and not under ours, less the allowed differences
(allowed.py, each with its reason). Exit status: 0 none, 1 some, 2 the suite could not
be set up (one line on stderr). vLLM's test code is run from the sdist, never copied.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(HERE), str(REPO)]

from allowed import ALLOWED  # noqa: E402
from standins import MODELS, offline_env, write_hub_cache  # noqa: E402

# The scheduler test files of vLLM's tests/v1/core that the suite runs.
SUITE = (
    "test_scheduler.py",
    "test_async_scheduler.py",
    "test_priority_scheduler_random.py",
    "test_priority_preemption_bug.py",
    "test_deferred_block_free.py",
    "test_swa_inflight_window_free.py",
    "test_worker_slot_overflow.py",
    "test_prefix_replay.py",
)
# What those files import from vLLM's tests/ (package markers and helper modules).
HELPERS = (
    "tests/__init__.py",
    "tests/v1/__init__.py",
    "tests/v1/core/__init__.py",
    "tests/v1/core/utils.py",
    "tests/v1/kv_connector/__init__.py",
    "tests/v1/kv_connector/unit/__init__.py",
    "tests/v1/kv_connector/unit/utils.py",
    "tests/v1/core/test_prefix_caching.py",  # test_scheduler imports a helper of it
)
CORE = "tests/v1/core/"
DEFAULT_INDEX = "https://pypi.org/simple"
HUB_ID = re.compile(r"""["']([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)["']""")


class PeerError(Exception):
    """The suite cannot be set up (one line for the user)."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ltrsched" / "vllm-sdist"


def installed_vllm() -> str:
    from live.compat import installed_vllm_version
    from live.errors import LiveError

    try:
        return installed_vllm_version()
    except LiveError as e:
        raise PeerError(str(e)) from None


def index_url() -> str:
    """The index pip is set to use (PIP_INDEX_URL or pip's config), else PyPI's."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        try:
            out = subprocess.run(
                [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            url = out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            url = ""
    return (url or DEFAULT_INDEX).rstrip("/")


def fetch_sdist(version: str, cache: Path) -> Path:
    """vllm-VERSION.tar.gz from the cache, else from the index (PEP 691 JSON page: the
    file's URL and sha256), checked and renamed into the cache. `pip download
    --no-binary :all:` cannot do it: it builds the sdist's metadata, which needs
    vLLM's whole build toolchain."""
    name = f"vllm-{version}.tar.gz"
    path = cache / name
    if path.is_file():
        return path
    page = f"{index_url()}/vllm/"
    req = urllib.request.Request(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            files = json.load(r).get("files", [])
        entry = next((f for f in files if f.get("filename") == name), None)
        if entry is None:
            raise PeerError(f"{page} lists no {name}: no source distribution of vLLM {version}")
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / (name + ".part")
        digest = hashlib.sha256()
        with urllib.request.urlopen(entry["url"], timeout=600) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
    except (OSError, ValueError) as e:
        raise PeerError(f"cannot fetch {name} from {page}: {e}") from None
    want = entry.get("hashes", {}).get("sha256")
    if want and digest.hexdigest() != want:
        tmp.unlink(missing_ok=True)
        raise PeerError(f"{name}: sha256 {digest.hexdigest()} is not the index's {want}")
    os.replace(tmp, path)
    return path


def extract(sdist: Path, dest: Path, files: tuple[str, ...]) -> list[str]:
    """Extract the suite's files (some import others) and helpers; return the paths of
    those to run, as pytest names them."""
    wanted = set(HELPERS) | {CORE + f for f in SUITE}
    got: set[str] = set()
    try:
        with tarfile.open(sdist) as tar:
            for m in tar.getmembers():
                rel = m.name.split("/", 1)[1] if "/" in m.name else ""
                if rel in wanted and m.isfile():
                    m.name = rel
                    tar.extract(m, dest, filter="data")
                    got.add(rel)
    except (OSError, tarfile.TarError) as e:
        raise PeerError(
            f"{sdist}: cannot read the archive ({e}); delete it to fetch again"
        ) from None
    missing = sorted(wanted - got)
    if missing:
        raise PeerError(f"{sdist.name} lacks {', '.join(missing)}: the suite's files moved")
    (dest / "pytest.ini").write_text("[pytest]\n")  # not ours: no testpaths, no addopts
    return [CORE + f for f in files]


def hub_ids(dest: Path, paths: list[str]) -> set[str]:
    """The hub model ids the suite names as model=... (for the stand-ins' check)."""
    ids: set[str] = set()
    for p in paths + [h for h in HELPERS if h.endswith("/utils.py")]:
        for line in (dest / p).read_text().splitlines():
            if "model" in line:
                ids.update(HUB_ID.findall(line))
    return {i for i in ids if not i.endswith((".py", ".json"))}


@dataclass
class Run:
    label: str
    policy: str | None  # None: vLLM's own scheduler
    record: Path
    log: Path
    proc: subprocess.Popen | None = None
    seconds: float = 0.0
    tests: dict[str, dict] = field(default_factory=dict)


def start(run: Run, work: Path, paths: list[str], env: dict[str, str], extra: list[str]) -> None:
    env = dict(env, LTRSCHED_PEER_RECORD=str(run.record))
    env.pop("LTRSCHED_PEER_POLICY", None)
    if run.policy is not None:
        env["LTRSCHED_PEER_POLICY"] = run.policy
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "ltrsched_peer",
        "-c",
        str(work / "pytest.ini"),
        "--rootdir",
        str(work),
        "-W",
        "ignore::pytest.PytestUnknownMarkWarning",
        "--continue-on-collection-errors",
        *extra,
        *paths,
    ]
    run.seconds = time.monotonic()
    with open(run.log, "w") as log:
        run.proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def finish(run: Run) -> None:
    assert run.proc is not None
    code = run.proc.wait()
    run.seconds = time.monotonic() - run.seconds
    if code not in (0, 1) or not run.record.is_file():
        tail = run.log.read_text().strip().splitlines()[-1:] or ["no output"]
        raise PeerError(
            f"pytest under {run.label} ended with status {code} ({tail[0]}); log: {run.log}"
        )
    run.tests = json.loads(run.record.read_text())["tests"]


def passed(run: Run) -> set[str]:
    return {t for t, r in run.tests.items() if r["outcome"] == "passed"}


def verdict(
    base: dict[str, dict], ours: dict[str, dict], allowed: dict[str, str]
) -> tuple[list[str], list[str], list[str]]:
    """(unexpected, allowed and seen, allowed but not seen failing): the tests passing
    under vLLM's scheduler and not under ours, split by the allow-list; and its entries
    that did not fail (stale, or outside the baseline here)."""
    lost = sorted(
        t
        for t, r in base.items()
        if r["outcome"] == "passed" and ours.get(t, {}).get("outcome") != "passed"
    )
    unexpected = [t for t in lost if t not in allowed]
    seen = [t for t in lost if t in allowed]
    stale = sorted(set(allowed) - set(seen))
    return unexpected, seen, stale


def reasons(tests: dict[str, dict], names: set[str]) -> list[tuple[int, str]]:
    """Why tests failed, grouped by the first line of their errors."""
    c = Counter(re.sub(r"/\S+", "PATH", tests[t]["error"])[:160] for t in names)
    return [(n, msg) for msg, n in c.most_common()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--policy",
        action="append",
        help="policy spec for the plug-in (repeat for several; default fcfs)",
    )
    ap.add_argument(
        "--no-verdict", action="store_true", help="report counts only; exit 0 whatever fails"
    )
    ap.add_argument(
        "--files",
        nargs="+",
        default=list(SUITE),
        metavar="FILE",
        help=f"test files of {CORE} (default: the suite's {len(SUITE)})",
    )
    ap.add_argument("--sdist", type=Path, help="a vllm-X.tar.gz already downloaded")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    ap.add_argument("--jobs", type=int, default=2, help="pytest runs at once (default 2)")
    ap.add_argument("-k", dest="keyword", help="pytest -k expression (a subset)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    try:
        return _main(args, t0)
    except PeerError as e:
        print(f"peer: error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace, t0: float) -> int:
    policies = args.policy or ["fcfs"]
    bad = sorted(set(args.files) - set(SUITE))
    if bad:
        raise PeerError(f"--files: {', '.join(bad)} not in the suite ({', '.join(SUITE)})")
    if args.jobs < 1:
        raise PeerError("--jobs must be at least 1")
    from policies import PolicyError, make_policy

    for p in policies:
        try:
            make_policy(p)
        except PolicyError as e:
            raise PeerError(f"--policy {p}: {e}") from None
    version = installed_vllm()
    sdist = args.sdist or fetch_sdist(version, cache_dir())
    if not sdist.is_file():
        raise PeerError(f"--sdist {sdist}: no such file")
    with tempfile.TemporaryDirectory(prefix="ltrsched-peer-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        paths = extract(sdist, work, tuple(args.files))
        unknown = sorted(hub_ids(work, paths) - set(MODELS))
        if unknown:
            print(
                f"peer: note: no stand-in for {', '.join(unknown)}: tests naming them "
                "fail under both schedulers"
            )
        env = dict(
            os.environ,
            **offline_env(write_hub_cache(work / "hub")),
            VLLM_CACHE_ROOT=str(work / "vllm-cache"),
        )
        env["PYTHONPATH"] = os.pathsep.join(
            [str(HERE), str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        extra = ["-k", args.keyword] if args.keyword else []
        setup_s = time.monotonic() - t0
        runs = [Run("vLLM's scheduler", None, work / "base.json", work / "base.log")]
        runs += [
            Run(f"plug-in {p}", p, work / f"ours-{i}.json", work / f"ours-{i}.log")
            for i, p in enumerate(policies)
        ]
        pending, active = list(runs), []
        while pending or active:
            while pending and len(active) < args.jobs:
                start(pending[0], work, paths, env, extra)
                active.append(pending.pop(0))
            finish(active.pop(0))
        return report(version, sdist, runs, args, setup_s, time.monotonic() - t0)


def report(
    version: str,
    sdist: Path,
    runs: list[Run],
    args: argparse.Namespace,
    setup_s: float,
    total_s: float,
) -> int:
    base, ours = runs[0], runs[1:]
    ok = passed(base)
    out_of_check = set(base.tests) - ok
    print(
        f"peer: vLLM {version} ({sdist.name}), {len(args.files)} files of {CORE}, "
        f"{len(base.tests)} tests"
    )
    print(
        f"peer: vLLM's own scheduler passes {len(ok)}; {len(out_of_check)} fail under it "
        "here and are outside the check:"
    )
    for n, msg in reasons(base.tests, out_of_check):
        print(f"    {n:4d}  {msg}")
    failed = 0
    for run in ours:
        allowed = ALLOWED.get(run.policy or "", {})
        unexpected, seen, stale = verdict(base.tests, run.tests, allowed)
        mine = passed(run) & ok
        built = sum(1 for t in mine if run.tests[t].get("built"))
        print(
            f"peer: plug-in with {run.policy}: passes {len(mine)} of those {len(ok)} "
            f"({built} of them built the plug-in); {len(seen)} allowed differences, "
            f"{len(unexpected)} unexpected"
        )
        for t in seen:
            print(f"    allowed  {t}: {allowed[t]}")
        for t in stale:
            print(f"    note: allowed difference {t} did not fail here")
        for t in unexpected:
            print(f"    FAILED   {t}: {run.tests.get(t, {}).get('error') or 'not run'}")
        if not args.no_verdict:
            failed += len(unexpected)
    times = ", ".join(f"{r.label} {r.seconds:.0f} s" for r in runs)
    print(f"peer: {total_s:.0f} s in all (set-up {setup_s:.0f} s; {times}; {args.jobs} at once)")
    n_pass = sum(len(passed(r) & ok) for r in ours)
    print(f"peer: {n_pass} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
