"""An upstream for the gateway's hostile-client tests, run as its own process: it parses
what reaches it with h11 (a strict HTTP/1.1 parser, and not the gateway's llhttp), writes
one JSON line per request (method, target, headers, body) or per framing error to a
record file, and answers every request 200 with a small JSON body.

    python tests/support/recording_upstream.py PORT RECORD_FILE

(Run by path, so that the repository's operator/ folder cannot shadow the standard
library's operator module.)
"""

from __future__ import annotations

import json
import socket
import sys
import threading

import h11

ANSWER = b'{"model_name":"rec","model_version":"1","outputs":[]}'


def serve(port: int, record_path: str) -> None:
    record = open(record_path, "a", buffering=1)  # noqa: SIM115 - one line at a time, until killed
    lock = threading.Lock()

    def write(entry: dict) -> None:
        with lock:
            record.write(json.dumps(entry) + "\n")

    listener = socket.create_server(("127.0.0.1", port))
    print("listening", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn, write), daemon=True).start()


def handle(conn: socket.socket, write) -> None:
    http = h11.Connection(h11.SERVER)
    request = None
    body = b""
    try:
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(conn.recv(65536))  # b"": the gateway closed; h11 says how
                continue
            if isinstance(event, h11.Request):
                request, body = event, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                write({"method": request.method.decode(), "target": request.target.decode("latin-1"),
                       "headers": [[k.decode(), v.decode("latin-1")] for k, v in request.headers],
                       "body": body.decode("latin-1")})
                conn.sendall(http.send(h11.Response(status_code=200, headers=[
                    ("content-type", "application/json"), ("content-length", str(len(ANSWER)))])))
                conn.sendall(http.send(h11.Data(data=ANSWER)) + http.send(h11.EndOfMessage()))
                if http.our_state is h11.MUST_CLOSE:
                    return
                http.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
    except h11.ProtocolError as exc:
        write({"error": f"{type(exc).__name__}: {exc}"})
    except OSError:
        pass
    finally:
        conn.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
