"""Send numbered UDP frames over a raw socket at a steady rate (run inside a namespace).

Usage: python paced_sender.py IFACE DST_MAC COUNT RATE [NET]
NET is the /24 the frames come from and go to (default 10.213.7): NET.1 → NET.99.
Prints "COUNT SECONDS". Used by the live-capture tests and bench/bench_network_live.py.
"""

import socket
import struct
import sys
import time


def checksum(header: bytes) -> int:
    total: int = sum(struct.unpack("!10H", header))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def frame(i: int, dst_mac: bytes, net: str) -> bytes:
    payload = struct.pack("!I", i) * 4
    source, target = socket.inet_aton(f"{net}.1"), socket.inet_aton(f"{net}.99")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), i & 0xFFFF, 0, 64, 17, 0, source, target)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    udp = struct.pack("!HHHH", 40000 + i % 1000, 9999, 8 + len(payload), 0)
    return dst_mac + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + udp + payload


def main() -> None:
    iface, dst_mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
    count, rate = int(sys.argv[3]), float(sys.argv[4])
    net = sys.argv[5] if len(sys.argv) > 5 else "10.213.7"
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    frames = [frame(i, dst_mac, net) for i in range(count)]
    start = time.perf_counter()
    for i, data in enumerate(frames):
        target = start + i / rate
        while True:
            now = time.perf_counter()
            if now >= target:
                break
            if target - now > 0.002:
                time.sleep(target - now - 0.001)
        sock.send(data)
    print(count, time.perf_counter() - start)


if __name__ == "__main__":
    main()
