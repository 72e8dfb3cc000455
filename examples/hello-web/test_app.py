"""Unit tests for hello-web (run by the pipeline's test stage: python -m unittest -v)."""

from __future__ import annotations

import os
import tempfile
import threading
import unittest
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import app


class AppTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        app.DATA_DIR = Path(self.tmp.name)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), app.Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def tearDown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.tmp.cleanup()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path) as resp:
                return resp.status, resp.read().decode().strip()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode().strip()

    def test_health(self) -> None:
        self.assertEqual(self.get("/healthz"), (200, "ok"))

    def test_health_fails_when_marker_exists(self) -> None:
        marker = Path(self.tmp.name) / "fail"
        marker.touch()
        os.environ["HEALTH_FAIL_FILE"] = str(marker)
        try:
            self.assertEqual(self.get("/healthz")[0], 503)
        finally:
            del os.environ["HEALTH_FAIL_FILE"]

    def test_version_and_visits(self) -> None:
        self.assertEqual(self.get("/version"), (200, app.VERSION))
        self.assertEqual(self.get("/visits"), (200, "1"))
        self.assertEqual(self.get("/visits"), (200, "2"))


if __name__ == "__main__":
    unittest.main()
