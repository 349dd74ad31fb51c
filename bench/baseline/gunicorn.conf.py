"""gunicorn settings for the baseline: TCP_NODELAY on the listeners (accepted
sockets inherit it), so gunicorn's separate header and body writes are not
held back by Nagle's algorithm against the client's delayed ACK."""
import socket


def when_ready(server):
    for listener in server.LISTENERS:
        listener.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
