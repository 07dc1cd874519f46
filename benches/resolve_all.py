#!/usr/bin/env python3
"""Sends one request per host to Botora, over keep-alive connections.

Used by benches/scale.sh to make a server resolve (and cache) every tenant
once. Reads host names, one per line, from the file given; sends
`GET <path>` with each as the Host header; exits non-zero if any answer is
the tenant-not-found 404 or not the expected status.

    resolve_all.py HOSTS_FILE PORT [--path /nope/] [--expect 404] [--connections 32]
"""

import argparse
import asyncio
import sys


async def worker(port, path, hosts, expect, counts):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for host in hosts:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = await reader.readexactly(length)
        if status == expect and b"tenant_not_found" not in body:
            counts["ok"] += 1
        else:
            counts["bad"] += 1
            if counts["bad"] <= 3:
                print(f"{host}: {status} {body[:120]!r}", file=sys.stderr)
    writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("hosts")
    parser.add_argument("port", type=int)
    parser.add_argument("--path", default="/nope/")
    parser.add_argument("--expect", type=int, default=404)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with open(args.hosts) as file:
        hosts = [line.strip() for line in file if line.strip()]
    counts = {"ok": 0, "bad": 0}
    shares = [hosts[n :: args.connections] for n in range(args.connections)]
    await asyncio.gather(
        *(worker(args.port, args.path, share, args.expect, counts) for share in shares)
    )
    print(f"{counts['ok']} resolved, {counts['bad']} not as expected")
    sys.exit(1 if counts["bad"] else 0)


asyncio.run(main())
