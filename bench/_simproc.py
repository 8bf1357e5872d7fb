"""A bundled simulator in its own process, for the gateway benches.

In the bench's own process the server threads would share the GIL with the clients being
timed; a separate ``modelgate simulate`` process keeps the client side's figures its own.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+)/v1)")


class SimulatorProcess:
    """``modelgate simulate --port 0`` on a scenario; ``base_url``/``port`` once started."""

    def __init__(self, scenario: dict[str, Any], workdir: Path, name: str) -> None:
        self._path = workdir / f"{name}-scenario.yaml"
        self._path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.port = 0

    def __enter__(self) -> SimulatorProcess:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest_modelgate.cli",
                "simulate",
                "--port",
                "0",
                "--scenario",
                str(self._path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self._process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self._process.stdout.readline()
            if not line:
                break
            match = _LISTENING.search(line)
            if match:
                self.base_url, self.port = match.group(1), int(match.group(2))
                return self
        self.stop()
        raise RuntimeError(f"the simulator for {self._path.name} did not start")

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 5 s); the port is closed after this."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
