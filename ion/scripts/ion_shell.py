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

from ion.core.cc.peer import peer_uid, trusted

CTRL_D = b"\x04"


def _refuse_other_user(path: str, uid: int, what: str) -> SystemExit:
    return SystemExit(
        f"ion-shell: {path}: {what} uid {uid}, not you: not attaching (another user may "
        "have put it there to see what you type)"
    )


def check_owner(path: str) -> None:
    """C{SystemExit(1)} unless the socket at C{path} belongs to this user or root."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise SystemExit(_cannot_connect(path, e)) from None
    if not trusted(st.st_uid):
        raise _refuse_other_user(path, st.st_uid, "the socket belongs to")


def connect(path: str) -> socket.socket:
    """A connection to the manhole at C{path}; C{SystemExit(1)} with the reason if none,
    or if the socket or the process serving it is not this user's (or root's)."""
    check_owner(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise SystemExit(_cannot_connect(path, e)) from None
    # The file may have been swapped since it was checked: the server itself must be ours.
    uid = peer_uid(sock)
    if uid is not None and not trusted(uid):
        sock.close()
        raise _refuse_other_user(path, uid, "it is served by")
    return sock


def _cannot_connect(path: str, e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return f"ion-shell: no socket at {path} (start the container with --manhole {path})"
    if isinstance(e, ConnectionRefusedError):
        return f"ion-shell: nothing serves {path} (its container has gone)"
    if isinstance(e, PermissionError):
        return f"ion-shell: {path}: permission denied (it belongs to another user)"
    return f"ion-shell: {path}: {e.strerror}"


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
