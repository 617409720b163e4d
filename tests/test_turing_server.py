"""The reader-study server against a hostile client and a broken study folder: the Host header,
request-body size, errors that repeat nothing, a busy port, a damaged or read-only database."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from test_turing import SMALL_VIEW, build_small_study, fresh_copy, runner

from synthtumor.cli import app as cli_app
from synthtumor.turing.app import MAX_BODY, allowed_hosts, create_app
from synthtumor.turing.study import DATABASE, load_study


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_study(tmp_path_factory.mktemp("turing_server"), *SMALL_VIEW)


def _rows(study: Path) -> int:
    with sqlite3.connect(study / DATABASE) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(study: Path, *args: str) -> Iterator[str]:
    """``synthtumor turing serve`` in a subprocess; yields its http://127.0.0.1:PORT."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "synthtumor.cli", "turing", "serve", str(study),
                             "--port", str(port), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                httpx.get(url + "/api/study", timeout=1.0)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server not up"
                time.sleep(0.1)
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------ Host header


def test_requests_naming_another_host_are_refused(study: Path, tmp_path: Path) -> None:
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 sends
    ``Host: evil.example:8765``; it must neither read nor write answers."""
    s = fresh_copy(study, tmp_path)
    case_id = load_study(s).case_ids[0]
    evil = TestClient(create_app(s), base_url="http://evil.example:8765")
    assert evil.get("/api/study").status_code == 400
    assert evil.post("/api/readers", json={"name": "Ann"}).status_code == 400
    assert evil.put(f"/api/readers/Ann/answers/{case_id}",
                    json={"answer": "real"}).status_code == 400
    assert evil.get(f"/api/cases/{case_id}/slices/0").status_code == 400
    assert _rows(s) == 0
    for base in ("http://127.0.0.1:8765", "http://localhost:8000", "http://[::1]:8000"):
        client = TestClient(create_app(s), base_url=base)
        assert client.get("/api/study").status_code == 200, base
    client = TestClient(create_app(s), base_url="http://localhost")
    assert client.post("/api/readers", json={"name": "Ann"}).status_code == 200
    assert client.put(f"/api/readers/Ann/answers/{case_id}",
                      json={"answer": "real"}).status_code == 200
    assert _rows(s) == 1
    # names given for a server reached by name or from other computers
    named = TestClient(create_app(s, hosts=allowed_hosts("10.0.0.5", ["study.example.org"])),
                       base_url="http://study.example.org:8000")
    assert named.get("/api/study").status_code == 200
    assert "127.0.0.1" not in allowed_hosts("10.0.0.5")
    assert {"127.0.0.1", "localhost", "[::1]", socket.gethostname().lower()} <= set(
        allowed_hosts("0.0.0.0"))


def test_served_study_checks_the_host_header(study: Path, tmp_path: Path) -> None:
    s = fresh_copy(study, tmp_path)
    with _server(s, "--allow-host", "study.example.org") as url:
        assert httpx.get(url + "/api/study").status_code == 200
        assert httpx.get(url + "/api/study",
                         headers={"Host": "study.example.org:1"}).status_code == 200
        r = httpx.get(url + "/api/study", headers={"Host": "evil.example:8765"})
        assert r.status_code == 400 and b"evil" not in r.content
        r = httpx.post(url + "/api/readers", json={"name": "Eve"},
                       headers={"Host": "evil.example:8765"})
        assert r.status_code == 400
    assert not (s / DATABASE).exists() or _rows(s) == 0
    _one_line_error(_cli("turing", "serve", str(s), "--allow-host", "*.example"), "*.example")


# ------------------------------------------------------------------------------ bodies


def test_large_bodies_are_refused_and_errors_repeat_nothing(study: Path, tmp_path: Path) -> None:
    s = fresh_copy(study, tmp_path)
    client = TestClient(create_app(s), base_url="http://127.0.0.1:8000")
    case_id = load_study(s).case_ids[0]
    client.post("/api/readers", json={"name": "Ann"})
    url = f"/api/readers/Ann/answers/{case_id}"
    big = json.dumps({"answer": "x" * 2_000_000}).encode()
    r = client.put(url, content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and len(r.content) < 200
    # a chunked body (no Content-Length) is bounded too
    r = client.put(url, content=iter([big[:1000]] * 10),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and len(r.content) < 200
    # just under the cap: parsed, refused as invalid, and the payload is not echoed
    marker = "ZQXJ" * ((MAX_BODY - 40) // 4)
    for body in ({"answer": marker}, {"answer": "real", marker: 1}, {"name": marker},
                 f'{{"answer": "{marker}'):
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        assert len(raw) <= MAX_BODY
        target = "/api/readers" if "name" in body else url
        r = client.request("POST" if "name" in body else "PUT", target, content=raw,
                           headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text[:200]
        assert "ZQXJ" not in r.text and len(r.content) < 300, r.text[:300]
        assert isinstance(r.json()["detail"], str)
    assert _rows(s) == 0
    assert client.put(url, json={"answer": "real"}).status_code == 200


def test_served_study_answers_a_huge_put_with_a_small_413(study: Path, tmp_path: Path) -> None:
    s = fresh_copy(study, tmp_path)
    case_id = load_study(s).case_ids[0]
    with _server(s) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(f"PUT /api/readers/Ann/answers/{case_id} HTTP/1.1\r\n"
                         f"Host: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                         "Content-Length: 300000000\r\n\r\n".encode() + b"{" + b" " * 65536)
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 413") and len(reply) < 1000, reply[:300]
        assert httpx.get(url + "/api/study").status_code == 200  # still serving


# ------------------------------------------------------------------------------ one-line errors


class _Ran:
    """What a command did: exit code and everything it printed (stdout and stderr)."""

    def __init__(self, exit_code: int, output: str) -> None:
        self.exit_code, self.output = exit_code, output


def _cli(*args: str, timeout: float = 60) -> _Ran:
    """``synthtumor ARGS`` in a subprocess: a server that wrongly starts is killed, not awaited,
    and what C++ libraries print to the real stderr is seen."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        proc = subprocess.run([sys.executable, "-m", "synthtumor.cli", *args], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() + (err.stderr or b"").decode()
        return _Ran(-1, f"still running after {timeout} s: {out}")
    return _Ran(proc.returncode, proc.stdout + proc.stderr)


def _one_line_error(result: _Ran, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for n in needles:
        assert n in result.output.replace("\n", ""), result.output


def test_busy_port_fails_before_announcing_the_study(study: Path, tmp_path: Path) -> None:
    s = fresh_copy(study, tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _cli("turing", "serve", str(s), "--port", str(port))
    _one_line_error(result, f"port {port}", "already in use")
    assert "reader study at" not in result.output


def test_damaged_answers_database_is_one_line(study: Path, tmp_path: Path) -> None:
    s = fresh_copy(study, tmp_path)
    db = s / DATABASE
    db.write_bytes(b"these are not the answers you are looking for" * 100)
    before = db.read_bytes()
    for cmd in ("serve", "report"):
        _one_line_error(_cli("turing", cmd, str(s)), str(db), "not a database")
    assert db.read_bytes() == before  # nothing overwritten
    # a real database with a damaged page: found by the integrity check, not mid-study
    db.unlink()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE readers (name TEXT PRIMARY KEY, created REAL NOT NULL)")
        conn.execute("CREATE TABLE answers (reader TEXT, case_id TEXT, answer TEXT, "
                     "answered REAL, PRIMARY KEY (reader, case_id))")
        conn.executemany("INSERT INTO readers VALUES (?, 0)", [(f"r{i:05d}" * 20,)
                                                                for i in range(400)])
    data = bytearray(db.read_bytes())
    data[4096 * 3:4096 * 3 + 200] = b"\xff" * 200
    db.write_bytes(bytes(data))
    for cmd in ("serve", "report"):
        _one_line_error(_cli("turing", cmd, str(s)), str(db), "answers")


def _make_read_only(path: Path) -> None:
    if os.geteuid() == 0:  # root writes through file modes; the immutable flag stops it too
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o444)


def _make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    path.chmod(0o644)


def test_read_only_answers_database(study: Path, tmp_path: Path) -> None:
    s = fresh_copy(study, tmp_path)
    client = TestClient(create_app(s), base_url="http://127.0.0.1:8000")
    client.post("/api/readers", json={"name": "Ann"})
    client.put(f"/api/readers/Ann/answers/{load_study(s).case_ids[0]}", json={"answer": "real"})
    del client
    db = s / DATABASE
    with sqlite3.connect(db) as conn:  # fold the WAL back in, as after a clean stop
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _make_read_only(db)
    try:
        # serving would fail at the first answer a reader gives: refused at the start
        _one_line_error(_cli("turing", "serve", str(s)), str(db), "cannot write")
        # the report only reads
        result = runner.invoke(cli_app, ["turing", "report", str(s), "-o",
                                         str(tmp_path / "rep")])
        assert result.exit_code == 0, result.output
        rep = json.loads((tmp_path / "rep" / "report.json").read_text())
        assert rep["readers"]["Ann"]["answered"] == 1
    finally:
        _make_writable(db)


def test_folder_without_dicom_is_one_line_without_itk_warnings(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    result = _cli("synthesize", str(folder), str(folder), "-o", str(tmp_path / "out"))
    _one_line_error(result, str(folder), "no DICOM series")
    assert not (tmp_path / "out").exists()
