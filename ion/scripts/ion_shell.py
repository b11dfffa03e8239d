"""ion-shell PATH: attach this terminal to the shell of a container started with --manhole PATH.

    twistd -n cc -n --manhole ./cc.sock res/deploy/hello.rel
    ion-shell ./cc.sock
    ><> ps()
    ><> ^D                      # detaches; the container keeps running

Plain Python, no Twisted: the terminal goes into raw mode (restored on exit)
and bytes are pumped both ways until the container closes the session. With
stdin not a terminal, its lines are sent as typed, and at its end the session
is left with Ctrl-D (after any call still running has answered).

The socket must belong to this user (or root), and so must the process
serving it where the OS tells: in a directory others can write to, another
user could have put their own socket at the path to read what is typed.

Exit status: 0 after a session, 1 if there is no shell to attach to or the
socket is not this user's.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys

from ion.core.cc import peer

CTRL_D = b"\x04"


def check_owner(path: str) -> None:
    """C{SystemExit(1)} unless the socket at C{path} belongs to this user or root."""
    try:
        peer.check_owner(path)
    except peer.Refused as e:
        raise SystemExit(f"ion-shell: {e}") from None


def connect(path: str) -> socket.socket:
    """A connection to the manhole at C{path}; C{SystemExit(1)} with the reason if none,
    or if the socket or the process serving it is not this user's (or root's)."""
    try:
        return peer.connect(path)
    except peer.Refused as e:
        raise SystemExit(f"ion-shell: {e}") from None


def pump(sock: socket.socket, stdin: int, stdout: int) -> None:
    """Copy C{stdin} to C{sock} and C{sock} to C{stdout} until the other side closes."""
    reading = True
    while True:
        ready, _, _ = select.select([sock, stdin] if reading else [sock], [], [])
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            os.write(stdout, data)
        if stdin in ready:
            data = os.read(stdin, 4096)
            if not data:
                reading = False
                data = CTRL_D  # end of input: leave the shell
            sock.sendall(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ion-shell", description="Attach to the shell of a container run with --manhole PATH."
    )
    parser.add_argument("path", help="the container's --manhole socket")
    args = parser.parse_args(argv)
    sock = connect(args.path)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    saved = None
    if os.isatty(stdin):
        import termios
        import tty

        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
    try:
        pump(sock, stdin, stdout)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if saved is not None:
            import termios

            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
            os.write(stdout, b"\r\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
