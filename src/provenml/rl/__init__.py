"""Shared reinforcement-learning parts: the PPO core, an actor-critic, a batched-env base.

Any system may import these; none of them imports a system::

    from provenml.rl import (
        ActorCritic, gae, ppo_clip_loss, ppo_minibatch_backward, ppo_minibatch_loss,
    )

    policy = ActorCritic(in_dim=6, action_dim=5, discrete=True, hidden=64)
    advantages, returns = gae(rewards, values, gamma=0.99, lam=0.95)   # (num_envs, horizon)
    dist = policy.distribution(obs)
    loss = ppo_clip_loss(dist.log_prob(actions), old_logp, advantages, clip=0.2)
    # or the whole minibatch loss (surrogate, value, entropy) in one C kernel where it runs
    out = ppo_minibatch_loss(policy, obs, actions, old_logp, advantages, returns,
                             clip=0.2, value_coef=0.5, entropy_coef=0.01)
    out.total.backward()
    # or both at once, the gradients put into .grad without autograd's graph where it can
    ppo_minibatch_backward(policy, obs, actions, old_logp, advantages, returns,
                           clip=0.2, value_coef=0.5, entropy_coef=0.01)
"""

from provenml.rl.envs import FixedHorizonVectorEnv, SingleEnvView
from provenml.rl.native import (
    PolicyActor,
    PPOLoss,
    native_ppo_available,
    policy_act,
    ppo_minibatch_backward,
    ppo_minibatch_loss,
)
from provenml.rl.policies import ActorCritic, SigmoidTanh
from provenml.rl.ppo import PPOConfig, gae, ppo_clip_loss

__all__ = [
    "ActorCritic",
    "FixedHorizonVectorEnv",
    "PPOConfig",
    "PPOLoss",
    "PolicyActor",
    "SigmoidTanh",
    "SingleEnvView",
    "gae",
    "native_ppo_available",
    "policy_act",
    "ppo_clip_loss",
    "ppo_minibatch_backward",
    "ppo_minibatch_loss",
]
