"""S6 reproductions: ``distrl.throughput`` (headline), ``distrl.league``, ``distrl.faults``.

Config, wiring and claims only: the measurement is :mod:`provenml.distrl.throughput`, the
driver :mod:`provenml.distrl.training`, the RLlib baseline :mod:`provenml.distrl.baselines`,
the evaluator :mod:`provenml.distrl.league`, the figures :mod:`provenml.distrl.plots`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from provenml.core import (
    Claim,
    Config,
    Member,
    Precondition,
    Result,
    RunContext,
    Table,
    experiment,
    flatten_summary,
)
from provenml.distrl import league as lg
from provenml.distrl import plots
from provenml.distrl.scripted import SCRIPTED
from provenml.distrl.throughput import measure_throughput
from provenml.distrl.training import TrainSettings, train
from provenml.distrl.wargame import WargameConfig
from provenml.rl import PPOConfig

# the target: at least 1.5x RLlib's end-to-end env steps/s on simple_tag_v3, 2 cores
RLLIB_FACTOR = 1.5


@dataclass
class ThroughputConfig(Config):
    """Defaults are the ``small`` preset: RLlib's setting of the issue's anchor (2 samplers x
    4 envs), 1000 env steps per iteration, 4 PPO epochs of 250-sample minibatches."""

    env: str = "simple_tag"
    envs_per_worker: int = 4
    fragment: int = 125
    iterations: int = 12
    actors: tuple[int, ...] = (1, 2)
    async_actors: tuple[int, ...] = (2,)
    numpy_actors: tuple[int, ...] = (2,)  # extra rows on simple_tag_np (not in the claim)
    claim_actors: int = 2
    ray: bool = True  # False: the single-process loop only (no Ray start)
    rllib: bool = True
    rllib_iterations: int = 8
    epochs: int = 4
    minibatch_size: int = 250
    hidden: int = 64
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "iterations": 3,
            "fragment": 10,
            "ray": False,
            "rllib": False,
        },
        "paper": {"iterations": 60, "actors": (1, 2, 3), "rllib_iterations": 40},
    }


def _slug(label: str) -> str:
    return label.split(" (")[0].replace(", ", "_").replace(" ", "_").replace("simple_tag_np", "np")


@experiment(
    "distrl.throughput",
    system="S6",
    claim="End-to-end env steps/s on mpe2 simple_tag_v3 with 2 rollout actors is at least 1.5x "
    "RLlib PPO's (new API stack, 2 env runners x 4 envs, same batch, same cores, same run)",
    config=ThroughputConfig,
    time={
        "smoke": "10 s",
        "small": "1.3 min measured (make demo, alone, load 1.2-2.6; 1 seed)",
        "paper": "15 min",
    },
    headline=True,
    devices=("cpu",),
    threads=1,
    claims=("vs_rllib",),
)
def throughput(cfg: ThroughputConfig, ctx: RunContext) -> Result:
    base = TrainSettings(
        env=cfg.env,
        mode="multi_player",
        envs_per_worker=cfg.envs_per_worker,
        fragment=cfg.fragment,
        iterations=cfg.iterations,
        seed=ctx.seed,
        minibatch_size=cfg.minibatch_size,
        ppo=PPOConfig(epochs=cfg.epochs, hidden=cfg.hidden),
    )
    rows, facts = measure_throughput(
        base,
        cfg.actors if cfg.ray else (),
        cfg.async_actors if cfg.ray else (),
        rllib=cfg.rllib and cfg.ray,
        rllib_iterations=cfg.rllib_iterations,
        numpy_env="simple_tag_np" if cfg.env == "simple_tag" else None,
        numpy_actors=cfg.numpy_actors if cfg.ray else (),
        log=lambda row: ctx.log(**row),
    )
    single = rows[0]
    rllib_row = next((r for r in rows if r.label.startswith("RLlib")), None)
    wanted = f"{cfg.claim_actors} actor{'s' if cfg.claim_actors > 1 else ''}"
    claimed = next((r for r in rows if r.label == wanted), single)
    rates = {_slug(r.label): r.env_steps_per_s for r in rows}
    summary: dict[str, Any] = {
        "env_steps_per_s": rates,
        "agent_steps_per_s": {_slug(r.label): r.agent_steps_per_s for r in rows},
        "learner_utilisation": {
            _slug(r.label): r.learner_utilisation for r in rows if r.learner_utilisation is not None
        },
        "policy_lag": {_slug(r.label): r.policy_lag for r in rows if r.policy_lag is not None},
        "load_before": facts["load_before"],
    }
    if rllib_row is not None:
        summary["ratio_vs_rllib"] = {
            _slug(r.label): r.env_steps_per_s / rllib_row.env_steps_per_s
            for r in rows
            if r is not rllib_row
        }
    summary["ratio_vs_single_process"] = {
        _slug(r.label): r.env_steps_per_s / single.env_steps_per_s for r in rows[1:]
    }
    one = next((r for r in rows if r.label == "1 actor"), None)
    two = next((r for r in rows if r.label == "2 actors"), None)
    if one is not None and two is not None:
        summary["scaling_efficiency_1_to_2"] = two.env_steps_per_s / (2 * one.env_steps_per_s)
    cpus = float(facts["cpus"] or 1)
    busy = facts["load_before"] > cpus
    if rllib_row is None:
        reason = f"RLlib PPO was not measured in this run ({facts['rllib']})"
    elif busy:
        reason = (
            f"the machine was busy: 1-min load average {facts['load_before']:.2f} on "
            f"{cpus:g} cores before timing"
        )
    else:
        reason = "RLlib measured on an idle machine"
    claim = Claim(
        key="vs_rllib",
        statement=f"provenml.distrl with {cfg.claim_actors} rollout actors reaches at least "
        f"{RLLIB_FACTOR}x RLlib PPO's end-to-end env steps/s on {cfg.env} "
        f"({cfg.envs_per_worker} envs per sampler, {cfg.fragment}-step fragments, "
        f"{cfg.epochs} epochs of {cfg.minibatch_size}-sample minibatches per iteration)",
        metric="env steps/s (first iteration excluded)",
        ours_label=claimed.label,
        ours=[claimed.env_steps_per_s],
        baselines={
            f"{RLLIB_FACTOR} x RLlib PPO": []
            if rllib_row is None
            else [RLLIB_FACTOR * rllib_row.env_steps_per_s]
        },
        comparison=">=",
        precondition=Precondition(reason, holds=[rllib_row is not None and not busy]),
    )
    table = Table(
        f"Throughput on {cfg.env} (load average {facts['load_before']:.2f} before timing)",
        [
            "arm",
            "env steps/s",
            "agent steps/s",
            "learner utilisation",
            "policy lag",
            "x RLlib",
            "load before",
        ],
        [
            [
                r.label,
                round(r.env_steps_per_s, 1),
                round(r.agent_steps_per_s, 1),
                None if r.learner_utilisation is None else round(r.learner_utilisation, 3),
                None if r.policy_lag is None else round(r.policy_lag, 2),
                None
                if rllib_row is None
                else round(r.env_steps_per_s / rllib_row.env_steps_per_s, 2),
                round(r.load_before, 2),
            ]
            for r in rows
        ],
    )
    return Result(
        claims=[claim],
        summary=flatten_summary(summary),
        tables=[table],
        data={"rows": [vars(r) for r in rows], "facts": facts},
    )


# --------------------------------------------------------------------------------------------
# distrl.league
# --------------------------------------------------------------------------------------------

SCRIPTED_OPPONENTS = ("random", "rush", "focus_fire")
# the bar for the learnt team against every scripted opponent at ``small``
BEAT_SCRIPTED = 0.8


@dataclass
class LeagueConfig(Config):
    """Defaults are the ``small`` preset (single-process mode: deterministic for a seed)."""

    units: int = 3
    envs: int = 64
    fragment: int = 32
    lr: float = 1e-3
    gamma: float = 0.99
    hidden: int = 64
    scripted_iterations: int = 250
    selfplay_iterations: int = 150
    response_iterations: int = 150  # the best response gets the self-play runs' budget
    eval_every: int = 25
    eval_episodes: int = 300
    elo_episodes: int = 60
    pool_size: int = 8
    snapshot_every: int = 10
    num_workers: int = 0
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "envs": 8,
            "fragment": 8,
            "scripted_iterations": 2,
            "selfplay_iterations": 2,
            "response_iterations": 1,
            "eval_every": 1,
            "eval_episodes": 8,
            "elo_episodes": 4,
            "pool_size": 2,
            "snapshot_every": 1,
        },
        "paper": {"scripted_iterations": 2000, "selfplay_iterations": 2000},
    }

    def settings(self, seed: int, **kw: Any) -> TrainSettings:
        return TrainSettings(
            env="wargame",
            env_kwargs={"units": self.units},
            envs_per_worker=self.envs,
            fragment=self.fragment,
            num_workers=self.num_workers,
            seed=seed,
            pool_size=self.pool_size,
            snapshot_every=self.snapshot_every,
            ppo=PPOConfig(lr=self.lr, gamma=self.gamma, hidden=self.hidden),
            **kw,
        )


@experiment(
    "distrl.league",
    system="S6",
    claim="On the wargame a learnt team beats every scripted opponent more than 80% of the "
    "time, and self-play with PFSP snapshot-pool sampling is less exploitable than "
    "latest-only self-play",
    config=LeagueConfig,
    time={
        "smoke": "20 s",
        "small": "2.2 min measured, idle (1 seed, load 1.2-1.6; stop 64)",
        "paper": "hours",
    },
    devices=("cpu",),
    threads=1,
    claims=("beats_scripted", "pool_less_exploitable"),
)
def league(cfg: LeagueConfig, ctx: RunContext) -> Result:
    game = WargameConfig(units=cfg.units)
    spec = lg.wargame_spec(game)
    bots = {name: SCRIPTED.get(name) for name in (*SCRIPTED_OPPONENTS, "strong")}
    # regime check: the scripted opponents are beatable (the hand-written policy beats them)
    strong = {
        o: lg.win_rates(bots["strong"], bots[o], cfg.eval_episodes, ctx.seed + 5, game)
        for o in SCRIPTED_OPPONENTS
    }
    # 1. a single-player team against the mixture of scripted bots, win rates over wall time
    curve: list[dict[str, float]] = []
    eval_seconds = [0.0]

    def evaluate(record: dict[str, Any]) -> None:
        ctx.log(phase="vs_scripted", iteration=record["iteration"], win_rate=record["win_rate"])
        it = record["iteration"] + 1
        if it % cfg.eval_every and it != cfg.scripted_iterations:
            return
        start = time.perf_counter()
        player = lg.policy_player(record["weights"]["red"], spec, cfg.hidden, ctx.seed)
        point = {"iteration": it, "seconds": record["seconds"] - eval_seconds[0]}
        for o in SCRIPTED_OPPONENTS:
            point[o] = lg.win_rates(player, bots[o], cfg.eval_episodes, ctx.seed + it, game)["win"]
        curve.append(point)
        ctx.log(phase="eval", **point)
        eval_seconds[0] += time.perf_counter() - start

    vs_bots = train(
        cfg.settings(
            ctx.seed, mode="vs_scripted", opponent="mixture", iterations=cfg.scripted_iterations
        ),
        on_iteration=evaluate,
    )
    team = lg.policy_player(vs_bots.weights["red"], spec, cfg.hidden, ctx.seed)
    final = {
        o: lg.win_rates(team, bots[o], cfg.eval_episodes, ctx.seed + 11, game)
        for o in SCRIPTED_OPPONENTS
    }
    # 2. self-play: latest-only against PFSP pool sampling, same budget
    selfplay = {
        strategy: train(
            cfg.settings(
                ctx.seed,
                mode="self_play",
                opponent_sampling=strategy,
                iterations=cfg.selfplay_iterations,
            ),
            on_iteration=lambda r, s=strategy: ctx.log(
                phase=f"self_play/{s}", iteration=r["iteration"], win_rate=r["win_rate"]
            ),
        )
        for strategy in ("latest", "pfsp")
    }
    base = cfg.settings(ctx.seed + 100)
    exploit = {
        strategy: lg.exploitability(
            run.weights["red"],
            base,
            cfg.response_iterations,
            cfg.eval_episodes,
            seed=ctx.seed + 100,
        )
        for strategy, run in selfplay.items()
    }
    # 3. Elo of the bots, the learnt teams and the PFSP pool's snapshots
    players = dict(bots)
    players["vs_scripted_final"] = team
    for strategy, run in selfplay.items():
        players[f"{strategy}_final"] = lg.policy_player(run.weights["red"], spec, cfg.hidden)
    manager = selfplay["pfsp"].manager
    assert manager is not None
    for snap in manager.pool("red"):
        players[f"pfsp_{snap.snapshot_id}"] = lg.policy_player(snap.weights, spec, cfg.hidden)
    names, scores, games, elo = lg.cross_play(players, cfg.elo_episodes, ctx.seed + 7, game)

    claims = [
        Claim(
            key="beats_scripted",
            statement=f"the team learnt against the scripted mixture wins more than "
            f"{BEAT_SCRIPTED:.0%} of its games against each scripted opponent (both sides)",
            metric="win rate",
            ours_label="learnt team",
            comparison=">",
            threshold=BEAT_SCRIPTED,
            members={o: Member([final[o]["win"]]) for o in SCRIPTED_OPPONENTS},
            precondition=Precondition(
                "the hand-written policy does not beat every scripted opponent (wins <= "
                "losses), so they may not be beatable",
                holds=[all(strong[o]["win"] > strong[o]["loss"] for o in SCRIPTED_OPPONENTS)],
            ),
        ),
        Claim(
            key="pool_less_exploitable",
            statement="a fresh best response trained for the same budget wins less often "
            "against the PFSP snapshot-pool self-play policy than against latest-only self-play",
            metric="best-response win rate",
            ours_label="PFSP pool",
            ours=[exploit["pfsp"]],
            baselines={"latest only": [exploit["latest"]]},
            comparison="<",
            precondition=Precondition(
                "the best responses beat neither self-play policy (win rate <= 0.5 against "
                "both): the budget measures no exploitability",
                holds=[max(exploit.values()) > 0.5],
            ),
        ),
    ]
    summary = {
        "win_rate": {o: final[o]["win"] for o in SCRIPTED_OPPONENTS},
        "draw_rate": {o: final[o]["draw"] for o in SCRIPTED_OPPONENTS},
        "strong_win_rate": {o: strong[o]["win"] for o in SCRIPTED_OPPONENTS},
        "best_response_win_rate": exploit,
        "elo": elo,
        "seconds": {
            "vs_scripted": vs_bots.seconds,
            **{f"self_play_{k}": v.seconds for k, v in selfplay.items()},
        },
    }
    tables = [
        Table(
            "Learnt team and hand-written policy against the scripted opponents",
            ["opponent", "learnt win", "learnt draw", "learnt loss", "strong win", "strong loss"],
            [
                [
                    o,
                    final[o]["win"],
                    final[o]["draw"],
                    final[o]["loss"],
                    strong[o]["win"],
                    strong[o]["loss"],
                ]
                for o in SCRIPTED_OPPONENTS
            ],
        ),
        Table(
            "Elo (Bradley-Terry fit of the cross-play matrix)",
            ["player", "Elo", "score"],
            [
                [n, round(elo[n], 1), float(scores[i].sum() / max(games[i].sum(), 1))]
                for i, n in sorted(enumerate(names), key=lambda x: -elo[x[1]])
            ],
        ),
        Table(
            "Exploitability: a fresh best response's win rate",
            ["self-play", "best-response win rate"],
            [[k, v] for k, v in exploit.items()],
        ),
    ]
    tables.insert(
        1,
        Table.from_records(
            "Learnt team's win rate against each scripted opponent over training wall time",
            curve,
            ["iteration", "seconds", *SCRIPTED_OPPONENTS],
        ),
    )
    plots.win_rate_curve(ctx, curve, SCRIPTED_OPPONENTS)
    return Result(
        claims=claims,
        summary=flatten_summary(summary),
        tables=tables,
        data={"curve": curve},
    )


# --------------------------------------------------------------------------------------------
# distrl.faults
# --------------------------------------------------------------------------------------------

# "within noise": the killed run's final win rate within 10 points of the unkilled run's
FAULT_MARGIN = 0.1


@dataclass
class FaultsConfig(Config):
    """Defaults are the ``small`` preset: 2 rollout actors, worker 0 killed at ``kill_at``."""

    num_workers: int = 2
    envs: int = 32
    fragment: int = 32
    iterations: int = 120
    kill_at: int = 40
    lr: float = 1e-3
    hidden: int = 64
    opponent: str = "mixture"
    eval_episodes: int = 300
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "num_workers": 1,
            "envs": 4,
            "fragment": 8,
            "iterations": 4,
            "kill_at": 1,
            "eval_episodes": 8,
        },
        "paper": {"iterations": 1000, "kill_at": 300},
    }


@experiment(
    "distrl.faults",
    system="S6",
    claim="A rollout actor killed mid-run is restarted by Ray: training continues, the final "
    "win rate is within noise of the unkilled run and no sample is learnt twice",
    config=FaultsConfig,
    time={
        "smoke": "40 s",
        "small": "1.2 min measured, idle (1 seed, load 1.2-1.8; stop 64)",
        "paper": "hours",
    },
    devices=("cpu",),
    threads=1,
    claims=("continues", "no_double_count"),
)
def faults(cfg: FaultsConfig, ctx: RunContext) -> Result:
    game = WargameConfig()
    spec = lg.wargame_spec(game)
    base = TrainSettings(
        env="wargame",
        mode="vs_scripted",
        opponent=cfg.opponent,
        num_workers=cfg.num_workers,
        envs_per_worker=cfg.envs,
        fragment=cfg.fragment,
        iterations=cfg.iterations,
        seed=ctx.seed,
        ppo=PPOConfig(lr=cfg.lr, gamma=0.99, hidden=cfg.hidden),
    )
    import ray

    started = not ray.is_initialized()
    if started:  # one Ray start for both runs
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        runs = {
            "unkilled": train(base),
            "killed": train(TrainSettings(**{**vars(base), "kill_worker_at": cfg.kill_at})),
        }
    finally:
        if started:
            ray.shutdown()
    bots = {o: SCRIPTED.get(o) for o in SCRIPTED_OPPONENTS}
    final: dict[str, float] = {}
    for name, run in runs.items():
        player = lg.policy_player(run.weights["red"], spec, cfg.hidden, ctx.seed)
        rates = [
            lg.win_rates(player, bots[o], cfg.eval_episodes, ctx.seed + 3, game)["win"]
            for o in SCRIPTED_OPPONENTS
        ]
        final[name] = float(sum(rates) / len(rates))
    killed = runs["killed"]
    duplicates = len(killed.fragment_ids) - len(set(killed.fragment_ids))
    expected_steps = (
        (cfg.iterations * cfg.num_workers - killed.lost_fragments) * cfg.envs * cfg.fragment
    )
    restarted = Precondition(
        "the kill did not take effect (no actor restart was observed)",
        holds=[killed.restarts >= 1],
    )
    claims = [
        Claim(
            key="continues",
            statement=f"after the kill, training continues and the final mean win rate "
            f"against the scripted opponents is within {FAULT_MARGIN} of the unkilled run's",
            metric="mean win rate against random / rush / focus_fire",
            ours_label="killed run",
            ours=[final["killed"]],
            baselines={"unkilled run": [final["unkilled"]]},
            comparison="within",
            margin=FAULT_MARGIN,
            precondition=restarted,
        ),
        Claim(
            key="no_double_count",
            statement="no fragment is learnt twice (every learnt fragment's (worker seed, "
            "sample index) id is unique, so a restarted actor replays nothing) (0 duplicates)",
            metric="duplicate fragments learnt",
            ours_label="killed run",
            ours=[float(duplicates)],
            comparison="<=",
            threshold=0,
            precondition=restarted,
        ),
    ]
    curves = {
        name: [(r["env_steps"], r["win_rate"]) for r in run.iterations]
        for name, run in runs.items()
    }
    summary = {
        "final_win_rate": final,
        "restarts": killed.restarts,
        "lost_fragments": killed.lost_fragments,
        "duplicate_fragments": duplicates,
        "env_steps": {name: run.env_steps for name, run in runs.items()},
        "expected_env_steps_killed": expected_steps,
    }
    table = Table(
        "Killed vs unkilled run",
        ["run", "env steps learnt", "restarts", "lost fragments", "final mean win rate"],
        [
            [name, run.env_steps, run.restarts, run.lost_fragments, final[name]]
            for name, run in runs.items()
        ],
    )
    return Result(
        claims=claims,
        summary=flatten_summary(summary),
        tables=[table],
        data={"curves": curves},
    )
