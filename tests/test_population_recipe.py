"""A population trial runs pgu's MuJoCo recipe (issue 26; docs/spec.md §8): each member's observation filter is
RLlib's ``MeanStdFilter``, each env's reward scaling is ``RewardScaled``, and a member's final policy is a
``StoredPolicy`` that the one evaluator scores and a plain gymnasium loop reproduces."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.utils.filter import MeanStdFilter

from pgu_rllib.core.population import ActorCritic, Member
from pgu_rllib.core.update_rule import UpdateRule
from pgu_rllib.tasks.mujoco import RewardScaled
from pgu_rllib.tasks.normalisation import ObsFilter, RewardScaler
from pgu_rllib.tasks.population import PopulationSpec, PopulationTrainer


def test_each_members_filter_is_rllibs_mean_std_filter():
    """Three members, four envs each, six steps of observations on very different scales: every normalised
    observation and each member's running statistics equal RLlib's filter fed the member's rows one by one."""
    rng = np.random.default_rng(0)
    K, n, d = 3, 4, 5
    ours = ObsFilter(K, d)
    theirs = [MeanStdFilter((d,), clip=10.0) for _ in range(K)]
    for step in range(6):
        x = rng.normal(loc=[0, 5, -3, 100, 0], scale=[1, 0.1, 10, 50, 1e-3], size=(K, n, d))
        got = ours(torch.from_numpy(x))
        for k in range(K):
            want = np.stack([theirs[k](x[k, i]) for i in range(n)])  # float64 rows, as MuJoCo gives them
            np.testing.assert_allclose(got[k].numpy(), want, rtol=1e-5, atol=1e-5, err_msg=f"step {step} member {k}")
    for k in range(K):
        mean, std = ours.frozen(k)
        np.testing.assert_allclose(mean.numpy(), theirs[k].running_stats.mean, rtol=1e-9)
        np.testing.assert_allclose(std.numpy(), theirs[k].running_stats.std, rtol=1e-6)
        assert ours.count[k] == theirs[k].running_stats.n == 6 * n
    frozen = ours(torch.from_numpy(x), update=False)  # a frozen pass changes nothing
    assert ours.count.tolist() == [24.0] * 3 and torch.equal(frozen, ours(torch.from_numpy(x), update=False))


def test_each_envs_reward_scaling_is_reward_scaled():
    """Two members (γ 0.99 and 0.9), two Pendulum envs each, 250 steps (a truncation at 200 restarts the
    return): the scaled rewards equal ``RewardScaled``'s on the same envs and actions."""
    gammas, n = [0.99, 0.9], 2
    wrapped = [[RewardScaled({"env_id": "Pendulum-v1", "gamma": g}) for _ in range(n)] for g in gammas]
    for k, envs in enumerate(wrapped):
        for i, env in enumerate(envs):
            env.reset(seed=10 * k + i)
    scaler = RewardScaler(gammas, n)
    rng = np.random.default_rng(1)
    ended = 0
    for _ in range(250):
        raw, done, want = np.zeros((2, n)), np.zeros((2, n), bool), np.zeros((2, n))
        for k, envs in enumerate(wrapped):
            for i, env in enumerate(envs):
                _, want[k, i], term, trunc, info = env.step(rng.uniform(-2, 2, size=1).astype(np.float32))
                raw[k, i], done[k, i] = info["raw_reward"], term or trunc
                if done[k, i]:
                    env.reset()
        ended += int(done.sum())
        got = scaler(torch.from_numpy(raw), torch.from_numpy(done))
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    assert ended == 4


def _trainer(normalize=True):
    spec = PopulationSpec("HalfCheetah-v5", num_envs=2, rollout=32, minibatch=16, epochs=1, normalize=normalize)
    members = [Member(UpdateRule(scale="ppo_clip"), lr=3e-4), Member(UpdateRule(scale="dpo"), lr=1e-3, gamma=0.95)]
    return PopulationTrainer(spec, members, seeds=[3, 4])


def test_a_members_stored_policy_is_scored_by_the_evaluator_and_a_plain_loop_reproduces_it():
    """After an iteration, member 1's stored policy: its layers are the member's actor, the evaluator's
    score equals a hand-written gymnasium loop (member 1's module, its frozen filter, the mean action,
    env seeds 10000+i) to 1e-6, and scoring leaves the trainer as it was."""
    trainer = _trainer()
    trainer.iterate(budget=1024)
    policy = trainer.stored_policy(1)
    module = ActorCritic(trainer.obs_dim, trainer.act_dim, discrete=False)
    module.load_state_dict(trainer.pop.member_state_dict(1))
    x = torch.randn(8, trainer.obs_dim)
    torch.testing.assert_close(policy.net(x), module.pi(x), rtol=0, atol=1e-6)

    before = (trainer.obs_filter.count.clone(), trainer.obs_filter.mean.clone(), trainer.obs.clone(),
              trainer.generators[1].get_state(), list(trainer.member_steps), trainer.env_steps)
    result = trainer.score(1, episodes=2)
    after = (trainer.obs_filter.count, trainer.obs_filter.mean, trainer.obs, trainer.generators[1].get_state(),
             trainer.member_steps, trainer.env_steps)
    assert all(torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b for a, b in zip(before, after))

    mean, std = (t.numpy() for t in trainer.obs_filter.frozen(1))
    env, returns = gym.make("HalfCheetah-v5"), []
    for episode in range(2):
        obs, _ = env.reset(seed=10_000 + episode)
        total, done = 0.0, False
        while not done:
            z = np.clip((obs - mean) / (std + 1e-6), -10, 10).astype(np.float32)
            with torch.no_grad():
                action = module.pi(torch.from_numpy(z)).numpy().astype(np.float64)
            obs, reward, term, trunc, _ = env.step(np.clip(action, -1, 1).astype(np.float32))
            total, done = total + reward, term or trunc
        returns.append(total)
    assert result.returns == pytest.approx(returns, abs=1e-6)
    assert result.lengths == [1000, 1000]


def test_a_copied_member_takes_the_filter_and_a_replaced_member_starts_a_new_one():
    """PBT's exploit copies the observation filter with the weights (a checkpoint holds both); a member
    started in a slot begins with a filter of its first observations only."""
    trainer = _trainer()
    trainer.iterate(budget=1024)
    trainer.copy_member(0, 1)
    assert torch.equal(trainer.obs_filter.mean[1], trainer.obs_filter.mean[0])
    assert torch.equal(trainer.pop.member_state_dict(1)["pi.0.weight"], trainer.pop.member_state_dict(0)["pi.0.weight"])
    trainer.replace(1, Member(UpdateRule(scale="mla", alpha_o=1.0, alpha_r=1.0), lr=1e-3), seed=9)
    assert trainer.obs_filter.count.tolist() == [2 + 64, 2]
    fresh = _trainer()
    fresh.replace(1, Member(UpdateRule(scale="mla", alpha_o=1.0, alpha_r=1.0), lr=1e-3), seed=9)
    torch.testing.assert_close(trainer.obs[1], fresh.obs[1], rtol=0, atol=0)
