"""The population host of ``pgu search --population`` (issue 26; docs/spec.md §8), driven directly with asyncio (the
class Ray runs as an actor): members wait for each other, one that leaves or goes silent does not hold the
others, and a run's PBT schedule is replayed on its member."""
import asyncio

import pytest

from pgu_rllib.service import _population
from pgu_rllib.service._population import PopulationHost
from pgu_rllib.tasks import get_task
from pgu_rllib.tasks.population_config import NotAPopulationRun, member_schedule, population_member
from pgu_rllib.tasks.training import build_config


def _config(seed: int, **overrides) -> dict:
    config = build_config(get_task("cartpole"), "ppo", overrides, seed=seed, budget=2048).to_dict()
    config.update(num_epochs=1)  # a fast iteration: 512 steps, 8 minibatches
    return config


def _host():
    spec, _, _ = population_member(_config(0))
    return PopulationHost(spec, budget=2048, floor=0.0)


def test_members_step_together_and_one_that_leaves_does_not_hold_the_other():
    async def scenario():
        host = _host()
        a = await host.join(population_member(_config(1))[1], 1)
        b = await host.join(population_member(_config(2, lr=1e-3))[1], 2)
        first = await asyncio.gather(host.step(a), host.step(b))
        assert [r["pgu"]["population_size"] for r in first] == [2, 2]
        assert [r["num_env_steps_sampled_lifetime"] for r in first] == [512, 512]
        await host.leave(b)  # stopped by the pruner
        alone = await asyncio.wait_for(host.step(a), 60)
        return alone

    alone = asyncio.run(scenario())
    assert alone["pgu"]["population_size"] == 1 and alone["num_env_steps_sampled_lifetime"] == 1024


def test_a_member_that_goes_silent_is_dropped_after_the_straggler_time(monkeypatch):
    monkeypatch.setattr(_population, "STRAGGLER_S", 0.5)

    async def scenario():
        host = _host()
        a = await host.join(population_member(_config(1))[1], 1)
        b = await host.join(population_member(_config(2))[1], 2)  # its trial died: it never asks
        result = await asyncio.wait_for(host.step(a), 60)
        return host, a, b, result

    host, a, b, result = asyncio.run(scenario())
    assert host.slots == [a] and result["pgu"]["population_size"] == 1


def test_a_schedule_is_replayed_on_its_member_from_the_first_iteration_at_or_after_its_steps():
    config = _config(1, scale="mla", alpha_o=0.5, alpha_r=1.0)
    config["pgu_schedule"] = [[0, {"alpha_o": 1.0}], [1024, {"alpha_o": 2.0, "lr": 1e-3}]]
    seen = []

    async def scenario():
        host = _host()
        sid = await host.join(population_member(config)[1], 1, member_schedule(config))
        for _ in range(3):
            await host.step(sid)
            member = host.trainer.members[0]
            seen.append((host.trainer.member_steps[0], member.rule.alpha_o, member.rule.alpha_r, member.lr))

    asyncio.run(scenario())
    assert seen == [(512, 1.0, 1.0, 3e-4), (1024, 1.0, 1.0, 3e-4), (1536, 2.0, 1.0, 1e-3)]


def test_a_schedule_of_a_structural_key_is_refused():
    config = _config(1)
    config["pgu_schedule"] = [[0, {"num_epochs": 5}]]
    with pytest.raises(NotAPopulationRun, match="'num_epochs' is structural"):
        population_member(config)


def test_a_member_whose_signals_are_not_finite_fails_alone():
    """Its run fails with the population's message; the other member's iteration completes and it goes on."""
    import dataclasses

    async def scenario():
        host = _host()
        a = await host.join(population_member(_config(1))[1], 1)
        broken = dataclasses.replace(population_member(_config(2))[1], gamma=float("nan"))  # NaN advantages
        b = await host.join(broken, 2)
        first = await asyncio.gather(host.step(a), host.step(b), return_exceptions=True)
        after = await asyncio.wait_for(host.step(a), 60)
        return host, first, after

    host, (ok, failed), after = asyncio.run(scenario())
    assert isinstance(failed, FloatingPointError) and "non-finite delta_r in population member 1" in str(failed)
    assert ok["pgu"]["population_size"] == 2 and ok["num_env_steps_sampled_lifetime"] == 512
    assert after["pgu"]["population_size"] == 1 and after["num_env_steps_sampled_lifetime"] == 1024
    assert len(host.slots) == 1
