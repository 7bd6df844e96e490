#!/usr/bin/env python3
"""bench/delay_proxy.py - a TCP proxy that models a remote object store.

    delay_proxy.py --listen HOST:PORT --target HOST:PORT
                   [--one-way-ms MS] [--connect-ms MS]

The bench suite (bench/suite.py) runs it inside the network namespace of
its "20 ms" s3rver, in front of it: these kernels have no netem qdisc, so
the delay is added here.  Every byte is delivered one-way-ms after it
arrived, in each direction (a request and its response pay 2 x one-way-ms:
the round trip), without limiting the bandwidth (bytes are time-stamped on
arrival and released in order, not forwarded one sleep at a time); a new
connection first waits connect-ms (the TCP handshake's round trip) before
anything is forwarded.  Port 0 picks a free port; "READY <port>" is printed
once it listens.  Python 3 standard library only.
"""

import argparse
import asyncio
import sys

TASKS = set()  # strong references: a pending task must not be collected


async def pipe(reader, writer, delay):
    loop = asyncio.get_running_loop()
    q = asyncio.Queue()

    async def rx():
        try:
            while True:
                data = await reader.read(1 << 16)
                q.put_nowait((loop.time() + delay, data))
                if not data:
                    return
        except Exception:  # reset, closed transport: end this direction
            q.put_nowait((loop.time(), b""))

    async def tx():
        try:
            while True:
                t, data = await q.get()
                dt = t - loop.time()
                if dt > 0:
                    await asyncio.sleep(dt)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except Exception:  # the other side went away
            return

    await asyncio.gather(rx(), tx())


async def handle(cr, cw, args):
    try:
        if args.connect_ms:
            await asyncio.sleep(args.connect_ms / 1000)
        host, port = args.target.rsplit(":", 1)
        sr, sw = await asyncio.open_connection(host, int(port))
    except OSError:
        cw.close()
        return
    d = args.one_way_ms / 1000
    try:
        await asyncio.gather(pipe(cr, sw, d), pipe(sr, cw, d))
    except Exception:
        pass
    finally:
        for w in (sw, cw):
            try:
                w.close()
            except Exception:
                pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--one-way-ms", type=float, default=10.0)
    ap.add_argument("--connect-ms", type=float, default=20.0)
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    def on_client(r, w):
        t = asyncio.get_running_loop().create_task(handle(r, w, args))
        TASKS.add(t)
        t.add_done_callback(TASKS.discard)

    srv = await asyncio.start_server(on_client, host, int(port), backlog=512)
    print("READY %d" % srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
