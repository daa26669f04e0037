"""S2: DynaMITE-RL (Liang et al. 2024), meta-RL where the latent changes between sessions.

Session-based environments (gymnasium single and batched), the agents (DynaMITE-RL, its
ablations, VariBAD, RL2 and the oracle / memoryless bounds, all trained by the shared PPO core
of :mod:`provenml.rl`), the belief model and its session-aware losses, training and evaluation::

    from provenml.metarl import SessionGridWorld, TrainConfig, evaluate, evaluation_options
    from provenml.metarl import train_agent

    env = SessionGridWorld(session_end_prob=0.07)       # a plain gymnasium.Env
    obs, info = env.reset(seed=0)
    trained = train_agent("dynamite", TrainConfig(total_steps=50_000), seed=0)
    episodes = evaluation_options("gridworld", 100, 0.07, seed=1)
    print(evaluate(trained.agent, "gridworld", episodes, 0.07, seed=1).mean_return)

The belief encoders and RL2's policy memory (``gru_states``, ``gru_stepper``) run their
recurrence over a sequence as a C kernel, forward and backward (``NativeRecurrence``, compiled
once with the system's gcc), where
``native_recurrence_available`` says it can (by default on AVX-512 and AVX2 CPUs, where it is
the faster path; ``PROVENML_NATIVE=1`` or ``0`` forces it on or off); elsewhere in PyTorch,
with the same results to float32 rounding.
"""

from provenml.metarl.agents import AGENT_BUILDERS, AGENTS, Agent, AgentShape, Rollout, make_agent
from provenml.metarl.belief import (
    BeliefEncoder,
    BeliefLossConfig,
    CellRewardDecoder,
    RewardDecoder,
    belief_losses,
    consistency_loss,
    gru_states,
    gru_stepper,
    session_reconstruction_mask,
)
from provenml.metarl.envs import (
    GOAL_LAYOUTS,
    GRID_SWITCH_MATRIX,
    SessionGridWorld,
    SessionGridWorldVec,
    SessionReacher,
    SessionReacherVec,
    sample_session_schedule,
)
from provenml.metarl.native import (
    NativeRecurrence,
    RecurrenceStepper,
    native_recurrence_available,
)
from provenml.metarl.train import (
    Evaluation,
    TrainConfig,
    TrainResult,
    evaluate,
    evaluation_options,
    make_vec_env,
    train_agent,
)

__all__ = [
    "AGENTS",
    "AGENT_BUILDERS",
    "GOAL_LAYOUTS",
    "GRID_SWITCH_MATRIX",
    "Agent",
    "AgentShape",
    "BeliefEncoder",
    "BeliefLossConfig",
    "CellRewardDecoder",
    "Evaluation",
    "NativeRecurrence",
    "RecurrenceStepper",
    "RewardDecoder",
    "Rollout",
    "SessionGridWorld",
    "SessionGridWorldVec",
    "SessionReacher",
    "SessionReacherVec",
    "TrainConfig",
    "TrainResult",
    "belief_losses",
    "consistency_loss",
    "evaluate",
    "evaluation_options",
    "gru_states",
    "gru_stepper",
    "make_agent",
    "make_vec_env",
    "native_recurrence_available",
    "sample_session_schedule",
    "session_reconstruction_mask",
    "train_agent",
]
