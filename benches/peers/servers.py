"""Starts and stops the servers under test: akidb (release build) and Chroma (`chroma run`),
each on a fresh data directory and its own port, logs kept beside the data."""
import os
import signal
import socket
import subprocess
import time
import urllib.request


def _wait_http_ok(url, process, log_path, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; log: {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s} s; log: {log_path}")


def _stop(process, timeout_s=120):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Akidb:
    """`akidb serve --port 0` from the repository root (so it finds runtime/ and models/);
    the address is read from the line it prints on stdout."""

    def __init__(self, binary, repo, data_dir, extra=()):
        os.makedirs(data_dir, exist_ok=True)
        self.log_path = os.path.join(data_dir, "akidb.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [binary, "serve", "--port", "0", "--qdrant-port", "0", "--data-dir", data_dir, *extra],
            cwd=repo, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.process.stdout.readline().strip()
        prefix = "akidb listening on "
        if not line.startswith(prefix):
            _stop(self.process)
            raise RuntimeError(f"akidb did not start: {line!r}; log: {self.log_path}")
        self.url = line[len(prefix):]
        _wait_http_ok(self.url + "/ready", self.process, self.log_path, 300)

    @property
    def pid(self):
        return self.process.pid

    def stop(self):
        _stop(self.process)
        self.log.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chroma:
    """`chroma run --path DIR --port P` (the chromadb package's own server binary)."""

    def __init__(self, chroma_bin, data_dir):
        os.makedirs(data_dir, exist_ok=True)
        self.port = free_port()
        self.log_path = os.path.join(data_dir, "chroma.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [chroma_bin, "run", "--path", data_dir, "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT)
        _wait_http_ok(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", self.process, self.log_path, 120)

    def stop(self):
        _stop(self.process)
        self.log.close()
