"""`graft train --devices N` on one machine: torchrun, with every TCP store it opens listening on the
loopback interface only.

torchrun's TCPStore binds all interfaces whatever address it is given (measured: `--standalone`, and
`--rdzv-endpoint=127.0.0.1:0 --local-addr=127.0.0.1`, both listen on `*:PORT`), so a single-node run would
accept connections from the network for its whole life. TCPStore can instead take a socket that is already
listening (`master_listen_fd`): the store class torchrun's agent uses is replaced by one that binds
127.0.0.1 first and hands the socket over. The workers connect to 127.0.0.1 (`--local-addr`), and gloo/NCCL
between processes of one machine stay local too.

Run as `python -m graft.training.torchrun_local TORCHRUN_ARGS...` by training/launch.py.
"""

from __future__ import annotations

import socket
import sys

import torch.distributed as dist
from torch.distributed.elastic.rendezvous import c10d_rendezvous_backend

LOOPBACK = "127.0.0.1"
_ARGS = (
    "host_name",
    "port",
    "world_size",
    "is_master",
    "timeout",
    "wait_for_workers",
    "multi_tenant",
    "master_listen_fd",
    "use_libuv",
)  # fmt: skip  (TCPStore's positional parameters, in order)


class LoopbackStore(dist.TCPStore):
    def __init__(self, *args, **kwargs):
        kwargs.update(zip(_ARGS, args))
        if kwargs.get("is_master") and kwargs.get("master_listen_fd") is None:
            listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listening.bind((LOOPBACK, int(kwargs.get("port") or 0)))
            listening.listen(128)
            kwargs.update(
                host_name=LOOPBACK, port=listening.getsockname()[1], master_listen_fd=listening.detach()
            )
        super().__init__(**kwargs)


def main(argv: list[str]) -> None:
    # Both places torchrun's agent creates a store from: the c10d rendezvous and the agent's own store.
    dist.TCPStore = LoopbackStore
    c10d_rendezvous_backend.TCPStore = LoopbackStore
    from torch.distributed.run import main as torchrun

    torchrun(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
