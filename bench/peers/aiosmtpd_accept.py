#!/usr/bin/env python3
"""aiosmtpd with a handler that accepts every message: the peer of a wasmtpd plugin in
Python in bench/plugin_languages.py.

    aiosmtpd_accept.py PORT
"""

import asyncio
import sys

from aiosmtpd.smtp import SMTP


class Accept:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Accept(), hostname="bench.test"), "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
