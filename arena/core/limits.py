"""Server limits: what one request may ask of this server, enforced on the server.

Two presets: `local` (generous: a CLI or a page on your own machine) and `public` (a Space or
any server that strangers can reach). `ServerLimits.from_env()` picks the preset from
ARENA_LIMITS ("local", its old name "default", or "public"); unset, it is `public` when SPACE_ID
is set or the server binds a non-loopback address, else `local`. Then it applies any of these:

    ARENA_ALLOWED_MODELS      comma-separated model ids or fnmatch patterns ("default,
                              synthetic:*,HuggingFaceTB/SmolLM2-*"); empty: any model
    ARENA_ALLOW_LOCAL_MODELS  1/0: local model directories allowed
    ARENA_MAX_PROMPT_CHARS    prompt length in characters, checked before tokenizing
    ARENA_MAX_PROMPT_TOKENS   prompt length in tokens (synthetic prompt_tokens included)
    ARENA_MAX_NEW_TOKENS      max_new_tokens
    ARENA_MAX_BATCH           batch_size
    ARENA_MAX_REPEATS         timed repeats
    ARENA_MAX_RUN_S           wall time of a whole run, seconds (0: none)
    ARENA_MAX_CONFIGS         configurations per run (0: none)
    ARENA_MAX_QUEUE           runs waiting in the web page's queue
    ARENA_WORKER_MEMORY_MB    memory of one configuration's worker (0: none): resident memory
                              on CPU, the torch allocator's share of the GPU on CUDA
    ARENA_VOTES_PER_HOUR      blind-check votes per session and per client address per hour
    ARENA_SHARE_OUTPUTS       1/0: the leaderboard, its CSV and the API show every visitor's
                              prompts and generated text (local: 1; public: 0)
    ARENA_WARM_WORKERS        1/0: keep a configuration's worker warm after its run, and a spare
                              worker ready (arena/execute/pool.py)
    ARENA_WARM_MEMORY_MB      memory all warm workers together may hold on one device (host RSS
                              on CPU, NVML on a GPU); 0 or unset: WARM_SHARE of the device's memory
    ARENA_WARM_IDLE_S         seconds an idle warm worker is kept
"""

from __future__ import annotations

import fnmatch
import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

# Hard ceilings of the request format itself; a server may only lower them.
MAX_NEW_TOKENS = 4096
MAX_BATCH = 256
MAX_REPEATS = 20
MAX_PROMPT_CHARS = 200_000  # refuse before tokenizing something absurd
MAX_SYNTHETIC_PROMPT_TOKENS = 32_768
MAX_SEED = 2**31 - 1
MAX_TEMPERATURE = 10.0  # sampling: temperature in (0, MAX_TEMPERATURE], top_p in (0, 1]
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1.0, 24 * 3600.0
# A sweep's own ceilings (its batch and repeats share the ones above).
SWEEP_MAX_SEQ = 131_072
SWEEP_MAX_PADDING = 0.9
SWEEP_MAX_POINTS = 2000
SWEEP_MAX_NEW_TOKENS = 1024
# Per configuration (a run) or per implementation (a sweep) unless the request says otherwise.
DEFAULT_TIMEOUT_S = 1800.0

# Warm workers: the share of a device's memory they may hold together when no budget is set,
# and how long an idle one is kept.
WARM_SHARE = 0.25
WARM_IDLE_S = 600.0
PUBLIC_WARM_MEMORY_MB = 2048
PUBLIC_WARM_IDLE_S = 120.0

# The public preset: small models that fit a shared GPU, one run at a time within a minute or two.
PUBLIC_MODELS = ("default", "synthetic:*", "HuggingFaceTB/SmolLM2-*", "Qwen/Qwen2.5-0.5B-Instruct",
                 "TinyLlama/TinyLlama-1.1B-Chat-v1.0")

_ENV = {  # field -> variable
    "allowed_models": "ARENA_ALLOWED_MODELS",
    "allow_local_models": "ARENA_ALLOW_LOCAL_MODELS",
    "max_prompt_chars": "ARENA_MAX_PROMPT_CHARS",
    "max_prompt_tokens": "ARENA_MAX_PROMPT_TOKENS",
    "max_new_tokens": "ARENA_MAX_NEW_TOKENS",
    "max_batch": "ARENA_MAX_BATCH",
    "max_repeats": "ARENA_MAX_REPEATS",
    "max_run_s": "ARENA_MAX_RUN_S",
    "max_configs": "ARENA_MAX_CONFIGS",
    "max_queue": "ARENA_MAX_QUEUE",
    "worker_memory_mb": "ARENA_WORKER_MEMORY_MB",
    "votes_per_hour": "ARENA_VOTES_PER_HOUR",
    "share_outputs": "ARENA_SHARE_OUTPUTS",
    "warm_workers": "ARENA_WARM_WORKERS",
    "warm_memory_mb": "ARENA_WARM_MEMORY_MB",
    "warm_idle_s": "ARENA_WARM_IDLE_S",
}
PRESETS = ("local", "public")
_ALIASES = {"default": "local"}  # the local preset's name before public servers defaulted to public
# Blind sessions and pairs kept in memory: older ones expire, and at most this many are kept.
BLIND_TTL_S = 3600.0
BLIND_MAX_SESSIONS = 10_000



class LimitsError(ValueError):
    """A limit variable that cannot be read (a server configuration error, not a user's)."""


@dataclass(frozen=True)
class ServerLimits:
    allowed_models: tuple[str, ...] = ()  # ids or fnmatch patterns; empty: any
    allow_local_models: bool = True
    max_prompt_chars: int = MAX_PROMPT_CHARS
    max_prompt_tokens: int | None = None  # None: the model's context decides
    max_new_tokens: int = MAX_NEW_TOKENS
    max_batch: int = MAX_BATCH
    max_repeats: int = MAX_REPEATS
    max_run_s: float | None = None  # wall time of a whole run
    max_configs: int | None = None
    max_queue: int = 32
    worker_memory_mb: int | None = None
    votes_per_hour: int = 60
    share_outputs: bool = True  # prompts and outputs of every visitor in the leaderboard and API
    preset: str = "local"  # which preset these started from (the page says so)
    warm_workers: bool = True
    warm_memory_mb: int | None = None  # None: WARM_SHARE of the device's memory
    warm_idle_s: float = WARM_IDLE_S

    @classmethod
    def public(cls) -> ServerLimits:
        """For a public Space: known small models, no local paths, short prompts and outputs,
        a few configurations per run, a run bounded to 5 minutes, a short queue."""
        return cls(
            allowed_models=PUBLIC_MODELS, allow_local_models=False, max_prompt_chars=8000,
            max_prompt_tokens=1024, max_new_tokens=256, max_batch=8, max_repeats=5, max_run_s=300.0,
            max_configs=8, max_queue=16, worker_memory_mb=None, votes_per_hour=30, share_outputs=False,
            preset="public", warm_memory_mb=PUBLIC_WARM_MEMORY_MB, warm_idle_s=PUBLIC_WARM_IDLE_S,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, server_name: str | None = None) -> ServerLimits:
        """The preset (`preset_name`), then each ARENA_* variable that is set and not empty.
        `server_name` is the address the web server binds (GRADIO_SERVER_NAME when not given).
        LimitsError names a variable that cannot be read."""
        env = os.environ if environ is None else environ
        limits = cls.public() if preset_name(env, server_name) == "public" else cls()
        changes: dict[str, object] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in _ENV.items():
            raw = env.get(var)
            if raw is None or not raw.strip():
                continue
            changes[name] = _parse(var, raw.strip(), str(types[name]))
        return replace(limits, **changes)

    def model_allowed(self, model_id: str) -> bool:
        if not self.allowed_models:
            return True
        return any(fnmatch.fnmatchcase(model_id, pattern) for pattern in self.allowed_models)

    def describe(self) -> dict[str, object]:
        """The limits as plain values (for the page and the docs)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def variable_of(name: str) -> str:
    """The ARENA_* variable that sets a limit field."""
    return _ENV.get(name, "ARENA_LIMITS" if name == "preset" else "")


def preset_name(environ: Mapping[str, str], server_name: str | None = None) -> str:
    """ARENA_LIMITS when set; otherwise public when others can reach this server (SPACE_ID set,
    or a non-loopback bind address), local when only this machine can."""
    raw = (environ.get("ARENA_LIMITS") or "").strip().lower()
    if raw:
        name = _ALIASES.get(raw, raw)
        if name not in PRESETS:
            raise LimitsError(f"ARENA_LIMITS must be 'local' or 'public' (got {raw!r})")
        return name
    if environ.get("SPACE_ID"):
        return "public"
    bind = server_name if server_name is not None else environ.get("GRADIO_SERVER_NAME")
    return "local" if bind is None or is_loopback(bind) else "public"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: reachable by others


def warm_budget_mb(setting_mb: float | None, device_total_mb: float | None) -> float:
    """The memory warm workers may hold together on a device: the setting, else WARM_SHARE of
    the device's total (0 when the total cannot be read: nothing is kept warm)."""
    if setting_mb is not None:
        return float(setting_mb)
    return WARM_SHARE * device_total_mb if device_total_mb else 0.0


def _parse(var: str, raw: str, type_name: str) -> object:
    if type_name.startswith("tuple"):
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    if type_name == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise LimitsError(f"{var} must be 1 or 0 (got {raw!r})")
    optional = "None" in type_name
    try:
        number = float(raw) if type_name.startswith("float") else int(raw)
    except ValueError:
        raise LimitsError(f"{var} must be a number (got {raw!r})") from None
    if number < 0 or not math.isfinite(number):
        raise LimitsError(f"{var} must be a finite number >= 0 (got {raw!r})")
    if number == 0:
        if optional:
            return None  # 0 turns an optional limit off
        raise LimitsError(f"{var} must be at least 1 (got {raw!r})")
    return number
