"""Server limits: read from the environment, enforced by validate and by the runner (run wall
time, worker memory), on real runs of a tiny synthetic Llama in spawned workers."""

import pytest

from arena.core.limits import LimitsError, ServerLimits
from arena.core.request import RequestError, RunRequest
from arena.execute import runner
from arena.execute.prepare import validate


def tiny(**kw):
    base = dict(model="synthetic:tiny-llama", prompt="", max_new_tokens=4, repeats=1, prompt_tokens=16,
                isolation="process")
    return RunRequest(**{**base, **kw})


def test_from_env_reads_every_variable_and_zero_turns_optional_limits_off():
    env = {
        "ARENA_ALLOWED_MODELS": "default, synthetic:*,,HuggingFaceTB/SmolLM2-*",
        "ARENA_ALLOW_LOCAL_MODELS": "0", "ARENA_MAX_PROMPT_CHARS": "5000", "ARENA_MAX_PROMPT_TOKENS": "512",
        "ARENA_MAX_NEW_TOKENS": "64", "ARENA_MAX_BATCH": "4", "ARENA_MAX_REPEATS": "3", "ARENA_MAX_RUN_S": "90.5",
        "ARENA_MAX_CONFIGS": "3", "ARENA_MAX_QUEUE": "10", "ARENA_WORKER_MEMORY_MB": "0",
    }
    limits = ServerLimits.from_env(env)
    assert limits.allowed_models == ("default", "synthetic:*", "HuggingFaceTB/SmolLM2-*")
    assert limits.allow_local_models is False
    assert (limits.max_prompt_chars, limits.max_prompt_tokens, limits.max_new_tokens) == (5000, 512, 64)
    assert (limits.max_batch, limits.max_repeats, limits.max_run_s) == (4, 3, 90.5)
    assert (limits.max_configs, limits.max_queue, limits.worker_memory_mb) == (3, 10, None)
    assert ServerLimits.from_env({}) == ServerLimits()
    public = ServerLimits.from_env({"ARENA_LIMITS": "public", "ARENA_MAX_NEW_TOKENS": "32"})
    assert public == ServerLimits(**{**ServerLimits.public().describe(), "max_new_tokens": 32})
    assert not public.allow_local_models and public.allowed_models and public.max_run_s


@pytest.mark.parametrize("env, server_name, preset", [
    ({}, None, "local"),
    ({"GRADIO_SERVER_NAME": "127.0.0.1"}, None, "local"),
    ({"GRADIO_SERVER_NAME": "0.0.0.0"}, None, "public"),
    ({}, "0.0.0.0", "public"),
    ({}, "::", "public"),
    ({}, "localhost", "local"),
    ({"GRADIO_SERVER_NAME": "0.0.0.0"}, "::1", "local"),  # launch's server_name wins
    ({"SPACE_ID": "someone/arena"}, None, "public"),
    ({"SPACE_ID": "someone/arena", "ARENA_LIMITS": "local"}, None, "local"),
    ({"GRADIO_SERVER_NAME": "0.0.0.0", "ARENA_LIMITS": "default"}, None, "local"),  # the old name
    ({"ARENA_LIMITS": "public"}, None, "public"),
])
def test_public_limits_wherever_others_can_reach_the_server(env, server_name, preset):
    limits = ServerLimits.from_env(env, server_name=server_name)
    assert limits.preset == preset
    assert limits == (ServerLimits.public() if preset == "public" else ServerLimits())


@pytest.mark.parametrize("env, message", [
    ({"ARENA_MAX_NEW_TOKENS": "lots"}, "ARENA_MAX_NEW_TOKENS must be a number"),
    ({"ARENA_MAX_RUN_S": "-1"}, "ARENA_MAX_RUN_S must be a finite number >= 0"),
    ({"ARENA_MAX_QUEUE": "0"}, "ARENA_MAX_QUEUE must be at least 1"),
    ({"ARENA_ALLOW_LOCAL_MODELS": "maybe"}, "ARENA_ALLOW_LOCAL_MODELS must be 1 or 0"),
    ({"ARENA_LIMITS": "strict"}, "ARENA_LIMITS must be 'local' or 'public'"),
])
def test_unreadable_variables_are_named(env, message):
    with pytest.raises(LimitsError, match=message):
        ServerLimits.from_env(env)


def test_validate_enforces_each_limit():
    limits = ServerLimits(allowed_models=("default", "synthetic:tiny-*"), allow_local_models=False,
                          max_prompt_chars=400, max_prompt_tokens=40, max_new_tokens=8, max_batch=2,
                          max_repeats=2, max_configs=2)

    def refused(message, **kw):
        with pytest.raises(RequestError) as err:
            validate(tiny(**kw), limits=limits)
        assert message in str(err.value) and "\n" not in str(err.value)

    refused("max_new_tokens must be between 1 and 8", max_new_tokens=9)
    refused("batch_size must be between 1 and 2", batch_size=3)
    refused("repeats must be between 1 and 2", repeats=3)
    refused("the prompt is 41 tokens; the limit here is 40", prompt_tokens=41)
    refused("3 configurations asked; the limit here is 2", configs=["eager", "sdpa", "sdpa-math"])
    refused("model 'synthetic:llama-2-7b' is not allowed here", model="synthetic:llama-2-7b")
    refused("model 'HuggingFaceTB/SmolLM2-360M' is not allowed here", model="HuggingFaceTB/SmolLM2-360M")
    refused("model '/tmp' is not allowed here", model="/tmp")  # refused before the disk is looked at
    refused("the prompt is 401 characters; the limit here is 400", model="default", prompt="x" * 401)
    refused("tokens; the limit here is 40", model="default", prompt="word " * 60)
    # within every limit it validates, and the limits travel with the prepared run
    prepared = validate(tiny(max_new_tokens=8, batch_size=2, repeats=2, prompt_tokens=40,
                             configs=["eager", "sdpa", "eager"]), limits=limits)
    assert prepared.config_names == ["eager", "sdpa"] and prepared.limits is limits
    assert validate(RunRequest(model="default", prompt="Hi", configs=["eager"], max_new_tokens=8,
                               repeats=2), limits=limits).spec.kind == "default"


def test_allowed_patterns_apply_to_resolved_local_paths(tmp_path):
    for name in ("models/m", "elsewhere"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "config.json").write_text("{}", encoding="utf-8")
    model = tmp_path / "models" / "m"
    limits = ServerLimits(allowed_models=(str(tmp_path / "models" / "*"),), allow_local_models=True)
    with pytest.raises(RequestError, match="is not allowed here"):  # resolves outside the pattern
        validate(tiny(model=str(tmp_path / "models" / ".." / "elsewhere")), limits=limits)
    with pytest.raises(RequestError) as err:  # allowed, then refused for what it is: an empty config
        validate(tiny(model=str(model)), limits=limits)
    assert "not allowed" not in str(err.value)
    with pytest.raises(RequestError, match="local model paths are not allowed here"):
        validate(tiny(model=str(model)), limits=ServerLimits(), allow_local_models=False)


def test_run_wall_time_stops_the_running_configuration_and_stores_the_rest_as_failed(store, fault):
    fault("sdpa=hang")
    prepared = validate(tiny(configs=["eager", "sdpa", "sdpa-math"], timeout_s=600),
                        limits=ServerLimits(max_run_s=25))
    results = runner.execute(prepared, store=store)
    by = {r.config: r for r in results}
    assert by["eager"].status == "ok"
    assert by["sdpa"].status == "failed"
    assert "timed out" in by["sdpa"].reason and "the run's time limit of 25 s" in by["sdpa"].reason
    assert by["sdpa-math"].status == "failed"
    assert by["sdpa-math"].reason == "not run: the run reached its time limit of 25 s"
    assert [by[n].ending for n in ("eager", "sdpa", "sdpa-math")] == ["ok", "run-time-limit", "not-run"]
    assert sorted(r.config for r in store.results()) == ["eager", "sdpa", "sdpa-math"]
    assert store.runs()[0]["status"] == "time limit"  # not "complete": it did not run all it was asked


def test_a_configuration_over_the_memory_limit_fails_while_the_others_run(store, fault):
    # A tiny-Llama worker peaks near 0.75 GB resident (Python, torch and all); the injected
    # fault keeps allocating until the watch from the runner kills it.
    fault("sdpa=alloc")
    prepared = validate(tiny(configs=["eager", "sdpa", "sdpa-math"]), limits=ServerLimits(worker_memory_mb=1500))
    by = {r.config: r for r in runner.execute(prepared, store=store)}
    assert by["sdpa"].status == "failed"
    assert by["sdpa"].reason.startswith("exceeded the memory limit of 1500 MB (resident memory reached")
    assert by["eager"].status == "ok" and by["sdpa-math"].status == "ok"
    assert by["eager"].peak_memory_mb < 1500
    assert len(store.results()) == 3


def test_a_tiny_memory_limit_stops_a_real_worker():
    prepared = validate(tiny(configs=["eager"]), limits=ServerLimits(worker_memory_mb=120))
    result = runner.execute(prepared)[0]
    assert result.status == "failed" and "exceeded the memory limit of 120 MB" in result.reason
