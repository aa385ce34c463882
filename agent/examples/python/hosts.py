#!/usr/bin/env python3
"""List and add bootwave hosts through the agent's gRPC API.

A client without reflection: the stubs are generated from the repository's
proto/ directory with grpcio-tools (nothing generated is kept in the
repository):

    python3 -m venv venv && venv/bin/pip install grpcio grpcio-tools
    venv/bin/python -m grpc_tools.protoc -I proto --python_out=gen \
        --grpc_python_out=gen proto/bootwave/v1/*.proto
    PYTHONPATH=gen venv/bin/python agent/examples/python/hosts.py \
        --agent unix:/run/bootwave-agent/agent.sock list
    PYTHONPATH=gen venv/bin/python agent/examples/python/hosts.py \
        add --mac 52:54:00:12:34:56 --ip 192.168.1.9 --hostname node-9 --label rack=r1

The agent is taken from --agent, else BOOTWAVE_AGENT. A unix socket needs
no credentials (its 0600 mode is the access control); over TCP give the
bearer token with --token or BOOTWAVE_TOKEN.
"""

import argparse
import os
import sys

import grpc

from bootwave.v1 import agent_pb2, agent_pb2_grpc, types_pb2


def connect(target):
    """A channel to the agent: `unix:PATH`, or `HOST:PORT` in clear text."""
    if target.startswith("http://"):
        target = target[len("http://"):]
    options = []
    if target.startswith("unix:"):
        # grpcio would send the socket path, percent-encoded, as the HTTP/2
        # authority, which the agent's HTTP/2 server refuses as malformed.
        options.append(("grpc.default_authority", "localhost"))
    return grpc.insecure_channel(target, options=options)


def list_hosts(stub, metadata):
    """Prints every host, one per line, following the pages."""
    token = ""
    while True:
        reply = stub.ListHosts(
            agent_pb2.ListHostsRequest(page_token=token), metadata=metadata
        )
        for host in reply.hosts:
            labels = ",".join(f"{k}={v}" for k, v in sorted(host.labels.items()))
            print(
                "\t".join(
                    [host.mac, host.fixed_address or "-", host.hostname or "-", labels or "-"]
                )
            )
        token = reply.next_page_token
        if not token:
            print(f"# generation {reply.generation}")
            return


def add_host(stub, metadata, args):
    """Reserves a host; reports the generation and any lagging data plane."""
    host = types_pb2.Host(
        mac=args.mac,
        fixed_address=args.ip or "",
        hostname=args.hostname or "",
        labels=dict(label.split("=", 1) for label in args.label),
    )
    reply = stub.PutHost(agent_pb2.PutHostRequest(host=host), metadata=metadata)
    print(f"generation {reply.generation}")
    for lag in reply.lagging:
        print(f"not yet on {lag.endpoint}: {lag.error}", file=sys.stderr)
    return 4 if reply.lagging else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default=os.environ.get("BOOTWAVE_AGENT"))
    parser.add_argument("--token", default=os.environ.get("BOOTWAVE_TOKEN"))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the hosts")
    add = commands.add_parser("add", help="add or replace a host")
    add.add_argument("--mac", required=True)
    add.add_argument("--ip")
    add.add_argument("--hostname")
    add.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if not args.agent:
        parser.error("no agent: give --agent or set BOOTWAVE_AGENT")
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
    stub = agent_pb2_grpc.BootwaveServiceStub(connect(args.agent))
    try:
        if args.command == "list":
            list_hosts(stub, metadata)
            return 0
        return add_host(stub, metadata, args)
    except grpc.RpcError as err:
        print(f"{err.code().name}: {err.details()}", file=sys.stderr)
        return 3 if err.code() == grpc.StatusCode.NOT_FOUND else 1


if __name__ == "__main__":
    sys.exit(main())
