"""S6: a multi-player multi-agent distributed RL toolbox on Ray (Yin et al. 2022, M2RL).

Vectorised team environments (a numpy wargame, mpe2's simple_tag and simple_adversary),
rollout workers with batched inference, one PPO learner per player, a players manager with
bounded snapshot pools and PFSP opponent sampling, Elo; one driver for a single process, one
machine's cores (Ray actors) or a Ray cluster (``address=``)::

    from provenml.distrl import TrainSettings, Wargame, train

    env = Wargame()                                   # a PettingZoo ParallelEnv
    obs, infos = env.reset(seed=0)
    result = train(TrainSettings(env="wargame", mode="vs_scripted", opponent="rush",
                                 num_workers=2, iterations=20))   # num_workers=0: no Ray
    print(result.steady_env_steps_per_s, result.iterations[-1]["win_rate"])
"""

from provenml.distrl.envs import ENVS, TeamSpec, TeamStep, TeamVecEnv, make_env
from provenml.distrl.learner import Learner, TeamPolicy, gae_with_dones, vtrace
from provenml.distrl.mpe_numpy import SimpleTagNumpy
from provenml.distrl.players import (
    OPPONENT_SAMPLING,
    EloTable,
    PlayersManager,
    Snapshot,
    elo_expected,
    elo_update,
    fit_elo,
)
from provenml.distrl.rollout import RolloutWorker
from provenml.distrl.scripted import SCRIPTED, play
from provenml.distrl.training import MODES, TrainResult, TrainSettings, train
from provenml.distrl.wargame import UNIT_TYPES, UnitType, Wargame, WargameBatch, WargameConfig

__all__ = [
    "ENVS",
    "MODES",
    "OPPONENT_SAMPLING",
    "SCRIPTED",
    "UNIT_TYPES",
    "EloTable",
    "Learner",
    "PlayersManager",
    "RolloutWorker",
    "SimpleTagNumpy",
    "Snapshot",
    "TeamPolicy",
    "TeamSpec",
    "TeamStep",
    "TeamVecEnv",
    "TrainResult",
    "TrainSettings",
    "UnitType",
    "Wargame",
    "WargameBatch",
    "WargameConfig",
    "elo_expected",
    "elo_update",
    "fit_elo",
    "gae_with_dones",
    "make_env",
    "play",
    "train",
    "vtrace",
]
