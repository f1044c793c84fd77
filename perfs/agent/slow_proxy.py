#!/usr/bin/env python3
"""LATENCY EMULATOR for benchmarks (not a real proxy): a TCP relay that adds a fixed delay.

This sandbox has no `tc netem`, so perfs/agent/latency.sh puts this relay between PerOS and
its S3 server (SeaweedFS on 127.0.0.1) to make the backend look far away.

    slow_proxy.py --listen PORT --target PORT [--delay-ms 30] [--down-delay-ms 0]
                  [--rate-mb-s 0] [--port-file FILE]

What it does to each TCP connection:
- connection setup: the upstream connect is held back `delay-ms` (one handshake round trip);
- client → server: every byte is forwarded `delay-ms` after it arrived (a one-way delay
  line, order kept, pipelined: a request costs `delay-ms` once however many segments it has);
- server → client: the same with `down-delay-ms` (default 0), and, if `rate-mb-s` > 0, paced
  to that many MiB/s (a bandwidth cap; default off).
So with the defaults every HTTP request/response pair (an S3 GET or PUT on a kept-alive
connection) takes `delay-ms` longer: a request-level RTT, with loopback bandwidth.

`--listen 0` picks a free port; the port is printed on stdout (and written to --port-file)
once the relay listens. Standard library only. Stops on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import signal
import sys
import time

CHUNK = 64 * 1024


async def delay_line(reader, writer, delay_s, rate_bps):
    """Copies reader → writer, each chunk released `delay_s` after it was read."""
    q = asyncio.Queue()

    async def pump_in():
        try:
            while True:
                data = await reader.read(CHUNK)
                q.put_nowait((time.monotonic() + delay_s, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            q.put_nowait((0.0, b""))

    async def pump_out():
        while True:
            due, data = await q.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                try:
                    if writer.can_write_eof():
                        writer.write_eof()
                except (ConnectionError, OSError):
                    pass
                return
            writer.write(data)
            await writer.drain()
            if rate_bps > 0:
                await asyncio.sleep(len(data) / rate_bps)

    inp = asyncio.ensure_future(pump_in())
    try:
        await pump_out()
    except (ConnectionError, OSError):
        pass
    finally:
        inp.cancel()


async def handle(client_r, client_w, args):
    delay = args.delay_ms / 1000.0
    try:
        if delay > 0:
            await asyncio.sleep(delay)
        server_r, server_w = await asyncio.open_connection("127.0.0.1", args.target)
    except OSError:
        client_w.close()
        return
    up = delay_line(client_r, server_w, delay, 0)
    down = delay_line(server_r, client_w, args.down_delay_ms / 1000.0, args.rate_mb_s * 1048576)
    try:
        await asyncio.gather(up, down)
    finally:
        for w in (client_w, server_w):
            try:
                w.close()
            except Exception:
                pass


async def main():
    ap = argparse.ArgumentParser(description="TCP latency emulator (benchmarks only)")
    ap.add_argument("--listen", type=int, default=0)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=30.0)
    ap.add_argument("--down-delay-ms", type=float, default=0.0)
    ap.add_argument("--rate-mb-s", type=float, default=0.0)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args), "127.0.0.1", args.listen
    )
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        import os

        os.replace(args.port_file + ".tmp", args.port_file)
    print(port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
