"""How long relayed Yjs updates spend in a server, from the kernel's own packet timestamps on loopback.

A load generator's fan-out latency adds its own time (sending, receiving, applying) to the server's. This tool
watches the loopback interface while a y-websocket server relays updates (for example during yload's S1) and,
for every update message a client sent to PORT, finds the same message leaving the server for another client:
the difference of the two kernel timestamps is the message's residence in the server, queueing included
(waiting for the event loop, for a CPU, for the GIL). Needs root (a raw packet socket); Linux only.

    sudo python3 bench/residence.py 18104 20          # port of the server, seconds to watch
    sudo python3 bench/residence.py 18104 20 --last   # per update, until its last copy left (S2's 49)

It assumes each TCP segment starts at a frame boundary (true for small messages written one per send), and
counts only sync-update messages (type 0, subtype 2), matched by their bytes.
"""

from __future__ import annotations

import argparse
import socket
import struct
import time

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4  # every loopback packet is seen twice; the outgoing copy carries the send time


def frames(payload: bytes) -> list[bytes]:
    """The complete WebSocket frames' payloads in one TCP segment, unmasked."""
    out: list[bytes] = []
    i = 0
    while i + 2 <= len(payload):
        length = payload[i + 1] & 0x7F
        j = i + 2
        if length == 126:
            if j + 2 > len(payload):
                break
            (length,) = struct.unpack_from("!H", payload, j)
            j += 2
        elif length == 127:
            if j + 8 > len(payload):
                break
            (length,) = struct.unpack_from("!Q", payload, j)
            j += 8
        mask = b""
        if payload[i + 1] & 0x80:
            mask = payload[j : j + 4]
            j += 4
        if j + length > len(payload):
            break
        data = payload[j : j + length]
        if mask:
            data = bytes(c ^ mask[k & 3] for k, c in enumerate(data))
        out.append(data)
        i = j + length
    return out


def watch(port: int, seconds: float, last: bool = False) -> list[float]:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind(("lo", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.settimeout(0.5)
    sent: dict[bytes, tuple[float, int]] = {}  # update message -> (time the client sent it, client port)
    residence: list[float] = []
    latest: dict[bytes, float] = {}  # with ``last``: update message -> when its latest copy left
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data, ancillary, _flags, address = sock.recvmsg(65536, 64)
        except TimeoutError:
            continue
        if address[2] != PACKET_OUTGOING:
            continue
        stamp = None
        for _level, kind, raw in ancillary:
            if kind == SO_TIMESTAMPNS:
                sec, ns = struct.unpack("qq", raw[:16])
                stamp = sec + ns / 1e9
        ip = data[14:]
        if stamp is None or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        tcp = ip[(ip[0] & 15) * 4 :]
        source, destination = struct.unpack_from("!HH", tcp, 0)
        payload = bytes(tcp[(tcp[12] >> 4) * 4 :])
        if not payload:
            continue
        for message in frames(payload):
            if len(message) < 4 or message[0] != 0 or message[1] != 2:
                continue
            if destination == port:
                sent.setdefault(message, (stamp, source))
            elif source == port:
                origin = sent.get(message)
                if origin is not None and origin[1] != destination:  # to another client, not an echo
                    if last:
                        latest[message] = stamp
                    else:
                        residence.append((stamp - origin[0]) * 1000)
    if last:
        residence = [(stamp - sent[message][0]) * 1000 for message, stamp in latest.items()]
    return residence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument(
        "--last", action="store_true", help="per update, until its last copy left (fan-out to many, as in S2)"
    )
    args = parser.parse_args()
    res = sorted(watch(args.port, args.seconds, args.last))
    if not res:
        print("no relayed update seen")
        return
    n = len(res)

    def q(f: float) -> float:
        return res[min(n - 1, int(f * n))]

    what = "updates (last copy)" if args.last else "relays"
    print(
        f"{n} {what}; residence ms p50 {q(0.5):.3f} p90 {q(0.9):.3f} p99 {q(0.99):.3f} "
        f"p99.9 {q(0.999):.3f} max {res[-1]:.3f}; over 1 ms {sum(r > 1 for r in res)}, "
        f"over 2 ms {sum(r > 2 for r in res)}, over 5 ms {sum(r > 5 for r in res)}"
    )


if __name__ == "__main__":
    main()
