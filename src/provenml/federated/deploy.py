"""Module-level Flower apps for a deployment (a SuperLink and SuperNodes, each a process).

``flwr run`` loads the components named in the Flower app's ``pyproject.toml``::

    [tool.flwr.app.components]
    serverapp = "provenml.federated.deploy:serverapp"
    clientapp = "provenml.federated.deploy:clientapp"

    [tool.flwr.app.config]
    arm = "full"                 # an arm of provenml.federated.ARMS
    seed = 0
    settings = "{}"              # FLSettings as JSON ({} = the defaults)
    result-path = ""             # where the ServerApp saves the final weights (optional)

Each SuperNode is started with ``--node-config "partition-id=K"``, K in 0..num_clients-1.
This module imports flwr at import time: only Flower's processes import it (the package's
``__init__`` does not).
"""

from __future__ import annotations

import json
from typing import Any

import torch
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from provenml.federated.engine import FLSettings
from provenml.federated.flower import RunSpec, answer_query, answer_train, serve


def spec_from_run_config(config: Any) -> RunSpec:
    """The :class:`RunSpec` of a Flower run config (``arm``, ``seed``, ``settings`` JSON)."""
    raw = json.loads(str(config.get("settings", "{}")) or "{}")
    return RunSpec(
        arm=str(config.get("arm", "full")),
        settings=FLSettings.from_dict(raw),
        seed=int(config.get("seed", 0)),
    )


serverapp = ServerApp()
clientapp = ClientApp()


@serverapp.main()
def main(grid: Grid, context: Context) -> None:
    spec = spec_from_run_config(context.run_config)
    outcome = serve(spec, grid)
    path = str(context.run_config.get("result-path", ""))
    if path:
        torch.save(
            {
                "state": outcome.state,
                "failures": outcome.failures,
                "timeouts": outcome.timeouts,
                "bytes": outcome.bytes_sent,
            },
            path,
        )


@clientapp.query()
def query(msg: Message, context: Context) -> Message:
    return answer_query(msg, context, spec_from_run_config(context.run_config))


@clientapp.train()
def train(msg: Message, context: Context) -> Message:
    return answer_train(spec_from_run_config(context.run_config), msg, context)
