"""Put this folder on PYTHONPATH to simulate a machine with no network: every outgoing connection
fails, and a process that tried one exits with status 97 even if the library swallowed the error."""
import atexit
import os
import socket
import sys

_attempts = []


def _refuse(*args, **kwargs):
    _attempts.append(args[1:] or args)
    raise OSError(f"network access attempted: {args[1:] or args}")


def _report():
    if _attempts:
        print(f"no_network: {len(_attempts)} connection attempt(s): {_attempts[:3]}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(97)


socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
atexit.register(_report)
