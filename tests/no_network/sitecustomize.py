"""Put this folder on PYTHONPATH to simulate a machine with no network: every outgoing connection
beyond loopback fails, and a process that tried one exits with status 97 even if the library
swallowed the error. Loopback stays open so a local server (the app) can serve and be reached."""
import atexit
import os
import socket
import sys

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_attempts = []
_connect, _connect_ex, _create_connection, _getaddrinfo = (
    socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo)


def _guard(original, host_of):
    def guarded(*args, **kwargs):
        host = host_of(args)
        if host in LOOPBACK or (isinstance(host, str) and host.startswith("/")):  # loopback or a unix socket
            return original(*args, **kwargs)
        _attempts.append(host)
        print(f"no_network: connection attempt to {host}", file=sys.stderr, flush=True)
        raise OSError(f"network access attempted: {host}")
    return guarded


def _address_host(address):
    return address[0] if isinstance(address, tuple) else address


def _report():
    if _attempts:
        print(f"no_network: {len(_attempts)} connection attempt(s): {_attempts[:3]}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(97)


socket.socket.connect = _guard(_connect, lambda a: _address_host(a[1]))
socket.socket.connect_ex = _guard(_connect_ex, lambda a: _address_host(a[1]))
socket.create_connection = _guard(_create_connection, lambda a: _address_host(a[0]))
socket.getaddrinfo = _guard(_getaddrinfo, lambda a: a[0])
atexit.register(_report)
