"""Dataset preparation: resumable verified downloads from a local HTTP server, label transfer on
real label maps, and datalists/folds built from real CT cases."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import typer
from conftest import LITS_CT, LITS_LABEL, TS_CT, TS_LIVER, TS_ORGANS
from typer.testing import CliRunner

from synthtumor.data import datalist as dl
from synthtumor.data.cli import data_app
from synthtumor.data.download import (
    DATASETS,
    EXTRACTED_MARKER,
    _direct_link,
    download,
    extract_archive,
    resolve_dataset,
)
from synthtumor.data.labels import REPORT_NAME, convert_labels, make_rule
from synthtumor.errors import InputError

runner = CliRunner()


def run_cli(*args: object):
    # mounted the way the main CLI mounts it
    app = typer.Typer()
    app.add_typer(data_app, name="data")
    return runner.invoke(app, ["data", *[str(a) for a in args]])


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def write_nii(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


# ============================================================================================
# download: a local HTTP server that understands Range (the stdlib one does not)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        body = srv.files.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m and not srv.ignore_range:
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if srv.cut_next:  # announce everything, send half, hang up
            srv.cut_next = False
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[dict[str, str | None]] = []
        self.ignore_range = False
        self.cut_next = False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture()
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _tar_gz(entries: dict[str, bytes | None], *, extra: list[tarfile.TarInfo] = ()) -> bytes:
    """A .tar.gz in memory; a None value makes a folder."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buf.getvalue()


def _nii_bytes(array: np.ndarray) -> bytes:
    img = nib.Nifti1Image(array, np.eye(4))
    return gzip_bytes(img.to_bytes())


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@pytest.fixture(scope="module")
def archive_bytes() -> bytes:
    rng = np.random.default_rng(0)
    return _tar_gz({
        "tiny": None,
        "tiny/imagesTr": None,
        "tiny/imagesTr/case1.nii.gz": _nii_bytes(rng.integers(-1000, 400, (8, 8, 4), np.int16)),
        "tiny/labelsTr/case1.nii.gz": _nii_bytes(np.ones((8, 8, 4), np.uint8)),
        "tiny/noise.bin": rng.bytes(200_000),  # incompressible: a resume has bytes to skip
        "tiny/empty": None,
    })


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != EXTRACTED_MARKER}


def _expected(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def test_registry_lists_the_four_seed_archives() -> None:
    by_name = {d.name: d for d in DATASETS}
    assert list(by_name) == ["btcv", "pancreas-ct", "chaos", "lits"]
    assert by_name["lits"].archive == "04_LiTS.tar.gz"
    assert by_name["btcv"].url.endswith("/jnv74utwh99ikus/01_Multi-Atlas_Labeling.tar.gz")
    assert by_name["chaos"].nominal_bytes == 925_300_000
    assert all(d.sha256 is None for d in DATASETS)  # none published
    mirror = resolve_dataset("LiTS", url="http://mirror.invalid/x.tar.gz", sha256="A" * 64)
    assert mirror.archive == "04_LiTS.tar.gz" and mirror.sha256 == "a" * 64
    with pytest.raises(ValueError, match="64 hexadecimal"):
        resolve_dataset("btcv", sha256="abc")
    with pytest.raises(InputError, match="unknown dataset"):
        resolve_dataset("kits")
    # share links are asked for the file itself, other URLs are left alone
    assert _direct_link(by_name["lits"].url).endswith("04_LiTS.tar.gz?dl=1")
    assert _direct_link("http://127.0.0.1:8/a.tar.gz") == "http://127.0.0.1:8/a.tar.gz"


def test_full_download_extracts_and_marks_complete(
    server: _Server, archive_bytes: bytes, tmp_path: Path
) -> None:
    server.files["/tiny.tar.gz"] = archive_bytes
    seen: list[tuple[str, int, int | None]] = []
    digest = hashlib.sha256(archive_bytes).hexdigest()
    res = download(server.url("/tiny.tar.gz"), tmp_path, sha256=digest,
                   progress=lambda *a: seen.append(a))
    assert res.downloaded and res.resumed_from == 0 and res.sha256 == digest
    assert (tmp_path / "tiny.tar.gz").read_bytes() == archive_bytes
    assert not (tmp_path / "tiny.tar.gz.part").exists()
    assert res.extracted == tmp_path / "tiny"
    assert _contents(res.extracted) == _expected(archive_bytes)
    assert (res.extracted / "tiny" / "empty").is_dir()  # folders come through
    marker = json.loads((res.extracted / EXTRACTED_MARKER).read_text())
    assert marker["sha256"] == digest and marker["size_bytes"] == len(archive_bytes)
    assert ("download", len(archive_bytes), len(archive_bytes)) in seen
    assert any(phase == "extract" for phase, *_ in seen)
    assert not list(tmp_path.glob(".*"))  # no temporaries left

    # complete: a second run neither downloads nor extracts
    n = len(server.requests)
    again = download(server.url("/tiny.tar.gz"), tmp_path)
    assert not again.downloaded and again.sha256 == digest and len(server.requests) == n


def test_resume_sends_range_and_gives_identical_bytes(
    server: _Server, archive_bytes: bytes, tmp_path: Path
) -> None:
    server.files["/tiny.tar.gz"] = archive_bytes
    half = len(archive_bytes) // 2
    (tmp_path / "tiny.tar.gz.part").write_bytes(archive_bytes[:half])
    res = download(server.url("/tiny.tar.gz"), tmp_path, extract=False)
    assert server.requests[-1]["range"] == f"bytes={half}-"
    assert res.resumed_from == half and res.extracted is None
    assert (tmp_path / "tiny.tar.gz").read_bytes() == archive_bytes
    assert res.sha256 == hashlib.sha256(archive_bytes).hexdigest()


def test_interrupted_transfer_keeps_part_and_resumes(
    server: _Server, archive_bytes: bytes, tmp_path: Path
) -> None:
    server.files["/tiny.tar.gz"] = archive_bytes
    server.cut_next = True
    with pytest.raises(InputError, match="interrupted.*run the same command again"):
        download(server.url("/tiny.tar.gz"), tmp_path)
    kept = (tmp_path / "tiny.tar.gz.part").stat().st_size
    assert 0 < kept < len(archive_bytes)
    res = download(server.url("/tiny.tar.gz"), tmp_path)
    assert server.requests[-1]["range"] == f"bytes={kept}-" and res.resumed_from == kept
    assert _contents(res.extracted) == _expected(archive_bytes)


def test_server_ignoring_range_restarts_from_zero(
    server: _Server, archive_bytes: bytes, tmp_path: Path
) -> None:
    server.files["/tiny.tar.gz"] = archive_bytes
    server.ignore_range = True
    # wrong bytes in the partial file: a restart must throw them away
    (tmp_path / "tiny.tar.gz.part").write_bytes(b"x" * 1000)
    res = download(server.url("/tiny.tar.gz"), tmp_path)
    assert server.requests[-1]["range"] == "bytes=1000-"  # asked, got 200
    assert res.resumed_from == 0
    assert (tmp_path / "tiny.tar.gz").read_bytes() == archive_bytes
    assert _contents(res.extracted) == _expected(archive_bytes)


def test_checksum_mismatch_keeps_nothing(
    server: _Server, archive_bytes: bytes, tmp_path: Path
) -> None:
    server.files["/tiny.tar.gz"] = archive_bytes
    dest = tmp_path / "dl"
    with pytest.raises(InputError, match="sha256 mismatch") as err:
        download(server.url("/tiny.tar.gz"), dest, sha256="0" * 64)
    assert "\n" not in str(err.value)
    assert list(dest.iterdir()) == []


def test_offline_gives_one_line_error_suggesting_archive(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/04_LiTS.tar.gz"
    with pytest.raises(InputError) as err:
        download("lits", tmp_path, url=url, timeout=5)
    text = str(err.value)
    assert f"cannot reach 127.0.0.1:{port}" in text and "offline?" in text
    assert "--archive PATH" in text and "\n" not in text
    assert not list(tmp_path.iterdir())

    result = run_cli("download", "lits", "--url", url, "-o", tmp_path, "--timeout", 5)
    assert result.exit_code == 2
    assert "cannot reach" in one_error_line(result)


def test_cli_download_and_archive_option(
    server: _Server, archive_bytes: bytes, tmp_path: Path
) -> None:
    server.files["/tiny.tar.gz"] = archive_bytes
    result = run_cli("download", server.url("/tiny.tar.gz"), "-o", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "extracted to" in result.stdout
    assert _contents(tmp_path / "a" / "tiny") == _expected(archive_bytes)

    # --archive: an archive fetched by hand, extracted in place (never moved or deleted)
    by_hand = tmp_path / "by_hand.tar.gz"
    by_hand.write_bytes(archive_bytes)
    result = run_cli("download", "chaos", "--archive", by_hand, "-o", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert _contents(tmp_path / "b" / "chaos") == _expected(archive_bytes)
    assert by_hand.read_bytes() == archive_bytes
    assert "differs from the published" in result.stderr  # 925 MB nominal: a warning only

    result = run_cli("download", "btcv", "chaos", "--archive", by_hand, "-o", tmp_path / "c")
    assert result.exit_code == 2 and "single dataset" in one_error_line(result)


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("entries", "extra", "why"),
    [
        ({"ok.txt": b"1", "../evil.txt": b"2"}, [], "path traversal"),
        ({"ok.txt": b"1", "a/../../evil.txt": b"2"}, [], "path traversal"),
        ({"/tmp/evil.txt": b"2"}, [], "absolute path"),
        ({"ok.txt": b"1"}, [_link("link", "../../etc/passwd")], "link pointing outside"),
        ({"ok.txt": b"1"}, [_link("hard", "../x", tarfile.LNKTYPE)], "link pointing outside"),
    ],
)
def test_unsafe_tar_members_are_refused(
    entries: dict[str, bytes], extra: list[tarfile.TarInfo], why: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(_tar_gz(entries, extra=extra))
    dest = tmp_path / "dest"
    with pytest.raises(InputError, match=why):
        download("btcv", dest, archive=bad)
    assert not (tmp_path / "evil.txt").exists()
    assert list(dest.iterdir()) == []  # neither the folder nor its temporary


def test_zip_archives_extract_and_traversal_is_refused(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("set/a.txt", b"hello")
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("set/a.txt", b"hello")
        zf.writestr("../evil.txt", b"no")
    out = extract_archive(good, tmp_path / "good")
    assert (out / "set" / "a.txt").read_bytes() == b"hello"
    with pytest.raises(InputError, match="path traversal"):
        extract_archive(bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "evil.txt").exists()


def test_corrupt_archive_is_refused(archive_bytes: bytes, tmp_path: Path) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive_bytes[: len(archive_bytes) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        extract_archive(cut, tmp_path / "out")
    text = tmp_path / "notes.tar.gz"
    text.write_bytes(b"just text, not an archive\n" * 20)
    with pytest.raises(InputError, match="not a tar or zip"):
        extract_archive(text, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tar.gz", "notes.tar.gz"]


# ============================================================================================
# labels: real label maps


@pytest.fixture(scope="module")
def organs() -> np.ndarray:
    return np.asarray(nib.load(TS_ORGANS).dataobj)


def _folder_of_links(folder: Path, **targets: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in targets.items():
        (folder / f"{name}.nii.gz").symlink_to(target)
    return folder


def test_totalseg_preset_gives_the_liver(organs: np.ndarray, tmp_path: Path) -> None:
    src = _folder_of_links(tmp_path / "src", ts=TS_ORGANS)
    report = convert_labels(src, tmp_path / "out", make_rule("totalseg"), preset="totalseg")
    assert [o.file for o in report.converted] == ["ts.nii.gz"]
    img = nib.load(tmp_path / "out" / "ts.nii.gz")
    mask = np.asarray(img.dataobj)
    assert img.get_data_dtype() == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert mask.sum() == (organs == TS_LIVER).sum() == report.converted[0].liver_voxels
    assert np.array_equal(mask == 1, organs == TS_LIVER)
    assert np.allclose(img.affine, nib.load(TS_ORGANS).affine, atol=1e-5)


def test_lits_tumor_case_skipped_or_kept(tmp_path: Path) -> None:
    src = _folder_of_links(tmp_path / "src", lits117=LITS_LABEL)
    result = run_cli("labels", src, tmp_path / "healthy", "--preset", "lits")
    assert result.exit_code == 2  # nothing converted
    assert "has tumor" in result.stdout
    report = json.loads((tmp_path / "healthy" / REPORT_NAME).read_text())
    assert report["converted"] == []
    skipped = [(s["file"], s["reason"]) for s in report["skipped"]]
    assert skipped == [("lits117.nii.gz", "has tumor")]
    assert not (tmp_path / "healthy" / "lits117.nii.gz").exists()

    result = run_cli("labels", src, tmp_path / "real", "--preset", "lits", "--keep-tumor")
    assert result.exit_code == 0, result.output
    kept = np.asarray(nib.load(tmp_path / "real" / "lits117.nii.gz").dataobj)
    assert set(np.unique(kept)) == {0, 1, 2}
    assert np.array_equal(kept, np.asarray(nib.load(LITS_LABEL).dataobj))

    result = run_cli("labels", src, tmp_path / "x", "--preset", "totalseg", "--keep-tumor")
    assert result.exit_code == 2 and "--keep-tumor" in one_error_line(result)


def test_chaos_0_255_mask_becomes_0_1(organs: np.ndarray, tmp_path: Path) -> None:
    liver = organs == TS_LIVER
    write_nii(tmp_path / "src" / "chaos1.nii.gz", (liver * 255).astype(np.uint8),
              nib.load(TS_ORGANS).affine)
    report = convert_labels(tmp_path / "src", tmp_path / "out", make_rule("chaos"))
    assert len(report.converted) == 1
    mask = np.asarray(nib.load(tmp_path / "out" / "chaos1.nii.gz").dataobj)
    assert set(np.unique(mask)) == {0, 1} and np.array_equal(mask == 1, liver)


def test_bad_files_are_recorded_and_the_batch_goes_on(organs: np.ndarray, tmp_path: Path) -> None:
    src = _folder_of_links(tmp_path / "src", a_good=TS_ORGANS, d_wrong_preset=LITS_LABEL)
    (src / "b_garbage.nii.gz").write_bytes(b"this is not a NIfTI file")
    (src / "c_truncated.nii.gz").write_bytes(TS_ORGANS.read_bytes()[:5000])
    write_nii(src / "e_empty.nii.gz", np.zeros((4, 4, 4), np.uint8))
    (tmp_path / "out").mkdir()
    write_nii(tmp_path / "out" / "e_empty.nii.gz", np.ones((4, 4, 4), np.uint8))  # stale

    result = run_cli("labels", src, tmp_path / "out", "--liver-label", TS_LIVER)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert [c["file"] for c in report["converted"]] == ["a_good.nii.gz"]
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert reasons == {"b_garbage.nii.gz": "unreadable", "c_truncated.nii.gz": "unreadable",
                       "d_wrong_preset.nii.gz": "no liver", "e_empty.nii.gz": "no liver"}
    for s in report["skipped"]:
        assert "\n" not in s["detail"] and s["file"] in s["detail"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_good.nii.gz", REPORT_NAME]

    # a multi-organ map under the LiTS preset is not silently read as liver + tumor
    report = convert_labels(src, tmp_path / "lits", make_rule("lits"), pattern="a_*")
    assert report.skipped[0].reason == "unexpected labels"


# ============================================================================================
# datalist: pairing rule, real CT cases, folds


@pytest.mark.parametrize(
    ("image", "label"),
    [
        ("img0001.nii.gz", "label0001.nii.gz"),  # BTCV
        ("volume-7.nii", "segmentation-7.nii"),  # LiTS
        ("liver_3.nii.gz", "liver_3.nii.gz"),  # MSD: identical names
        ("liver_3_0000.nii.gz", "liver_3.nii.gz"),  # nnU-Net
        ("case9_ct.nii.gz", "case9_label.nii.gz"),
        ("Image_12.nrrd", "seg_12.nii.gz"),
    ],
)
def test_pairing_rule(image: str, label: str, tmp_path: Path) -> None:
    assert dl.case_id(image, image=True) == dl.case_id(label, image=False)
    (tmp_path / "i").mkdir()
    (tmp_path / "l").mkdir()
    (tmp_path / "i" / image).touch()
    (tmp_path / "l" / label).touch()
    (tmp_path / "i" / "notes.txt").touch()  # not an image: ignored
    (tmp_path / "i" / "._img0001.nii.gz").touch()  # hidden debris: ignored
    cases, lone_i, lone_l = dl.pair_files(tmp_path / "i", tmp_path / "l")
    assert [(c.image.name, c.label.name) for c in cases] == [(image, label)]
    assert lone_i == lone_l == []


def test_pairing_rejects_clashes_and_reports_orphans(tmp_path: Path) -> None:
    assert dl.case_id("liver_3_0000.nii.gz", image=False) == "liver_3_0000"  # labels keep it
    assert dl.case_id("README.md", image=True) is None
    for d, names in (("i", ["case1.nii.gz", "case2.nii.gz"]), ("l", ["case1.nii.gz", "x.nii"])):
        (tmp_path / d).mkdir()
        for n in names:
            (tmp_path / d / n).touch()
    cases, lone_i, lone_l = dl.pair_files(tmp_path / "i", tmp_path / "l")
    assert [c.case_id for c in cases] == ["case1"]
    assert [p.name for p in lone_i] == ["case2.nii.gz"] and [p.name for p in lone_l] == ["x.nii"]
    (tmp_path / "i" / "case1_0000.nii.gz").touch()
    with pytest.raises(InputError, match="both have case id 'case1'"):
        dl.pair_files(tmp_path / "i", tmp_path / "l")


def _crop(src: Path, dst: Path, x: slice) -> Path:
    img = nib.load(src)
    arr = np.asarray(img.dataobj)[x]
    affine = img.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ [x.start or 0, 0, 0]
    return write_nii(dst, arr, affine)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """images/ + labels/ with 2 tumor-free and 3 tumor cases, in three naming styles.

    case001 totalseg CT + its liver (healthy); case002 lits117 (tumor); case003 and case004 the
    two x-halves of lits117 (tumor); case005 lits117's first 5 x-slices (liver, no tumor).
    """
    root = tmp_path_factory.mktemp("dataset")
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    (images / "case001_0000.nii.gz").symlink_to(TS_CT)  # nnU-Net image name
    organs = nib.load(TS_ORGANS)
    write_nii(labels / "case001.nii.gz",
              (np.asarray(organs.dataobj) == TS_LIVER).astype(np.uint8), organs.affine)
    (images / "case002.nii.gz").symlink_to(LITS_CT)  # identical names
    (labels / "case002.nii.gz").symlink_to(LITS_LABEL)
    for cid, x in (("003", slice(0, 64)), ("004", slice(64, 128)), ("005", slice(0, 5))):
        _crop(LITS_CT, images / f"img{cid}.nii.gz", x)  # BTCV-style names
        _crop(LITS_LABEL, labels / f"label{cid}.nii.gz", x)
    (images / "orphan.nii.gz").symlink_to(TS_CT)
    return root


def _build(dataset: Path, out: Path, *extra: object):
    return run_cli("datalist", "--images", dataset / "images", "--labels",
                   dataset / "labels", "-o", out, *extra)


def test_datalist_healthy_list_and_folds(dataset: Path, tmp_path: Path) -> None:
    from monai.data import load_decathlon_datalist

    out = tmp_path / "lists"
    result = _build(dataset, out, "--folds", "3", "--validation-fraction", "0.2")
    assert result.exit_code == 0, result.output
    assert "orphan.nii.gz" in result.stderr  # unmatched: warned, left out

    data = json.loads((out / "datalist.json").read_text())
    train = {i["case"] for i in data["training"]}
    val = {i["case"] for i in data["validation"]}
    assert train | val == {"case001", "case002", "003", "004", "005"} and not train & val
    # stratified: round(0.2 * 3) = 1 tumor case, round(0.2 * 2) = 0 healthy ones validate
    assert len(val) == 1 and all(i["tumor"] for i in data["validation"])
    for item in data["training"] + data["validation"]:
        assert not os.path.isabs(item["image"]) and not os.path.isabs(item["label"])
        assert (out / item["image"]).is_file() and (out / item["label"]).is_file()
    for key in ("training", "validation"):
        for item in load_decathlon_datalist(out / "datalist.json", data_list_key=key):
            assert os.path.isabs(item["image"]) and Path(item["image"]).is_file()
            assert os.path.isabs(item["label"]) and Path(item["label"]).is_file()

    healthy = json.loads((out / "healthy.json").read_text())
    assert [i["case"] for i in healthy["training"]] == ["005", "case001"]
    assert load_decathlon_datalist(out / "healthy.json")[1]["image"] == str(
        dataset / "images" / "case001_0000.nii.gz")

    tumor = {"003", "004", "case002"}
    seen: list[str] = []
    for k in range(3):
        fold = json.loads((out / f"fold_{k}.json").read_text())
        v = [i["case"] for i in fold["validation"]]
        t = [i["case"] for i in fold["training"]]
        assert set(v) | set(t) == tumor and not set(v) & set(t) and fold["fold"] == k
        seen += v
    assert sorted(seen) == sorted(tumor)  # each tumor case validated exactly once
    assert not (out / "fold_3.json").exists()

    # the training side reads it back, checking files and grids
    cases = dl.load_datalist(out / "datalist.json")
    assert {c.case_id for c in cases} == train


def test_datalist_is_deterministic(dataset: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert _build(dataset, out, "--folds", "2", "--seed", "7").exit_code == 0
    names = sorted(p.name for p in a.iterdir())
    assert names == ["datalist.json", "fold_0.json", "fold_1.json", "healthy.json"]
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    # fewer folds on a rerun: the old fold files go
    assert _build(dataset, a, "--folds", "0").exit_code == 0
    assert sorted(p.name for p in a.iterdir()) == ["datalist.json", "healthy.json"]
    # --healthy-only keeps tumor cases out of datalist.json
    assert _build(dataset, a, "--healthy-only", "--folds", "0").exit_code == 0
    data = json.loads((a / "datalist.json").read_text())
    assert not any(i["tumor"] for i in data["training"] + data["validation"])


def test_make_folds_cover_each_case_once() -> None:
    cases = [dl.Case(f"c{i:02d}", Path("i"), Path("l"), True) for i in range(23)]
    folds = dl.make_folds(cases, 5, seed=3)
    ids = [c.case_id for f in folds for c in f]
    assert sorted(ids) == [c.case_id for c in cases]
    assert sorted(len(f) for f in folds) == [4, 4, 5, 5, 5]
    assert folds == dl.make_folds(cases, 5, seed=3)
    assert folds != dl.make_folds(cases, 5, seed=4)


def _small_pair(root: Path, label: np.ndarray, label_affine: np.ndarray | None = None) -> None:
    write_nii(root / "images" / "c1.nii.gz", np.zeros((6, 6, 6), np.int16))
    write_nii(root / "labels" / "c1.nii.gz", label, label_affine)


def test_datalist_errors_are_one_line(dataset: Path, tmp_path: Path) -> None:
    ones = np.ones((6, 6, 6), np.uint8)
    shifted = np.eye(4)
    shifted[0, 3] = 10.0

    # shape mismatch, affine mismatch: both files named
    _small_pair(tmp_path / "shape", np.ones((6, 6, 5), np.uint8))
    _small_pair(tmp_path / "affine", ones, shifted)
    for case, words in (("shape", "shape (6, 6, 5) differs"), ("affine", "affine differs")):
        r = run_cli("datalist", "--images", tmp_path / case / "images", "--labels",
                    tmp_path / case / "labels", "-o", tmp_path / case / "out")
        line = one_error_line(r)
        assert r.exit_code == 2 and words in line
        assert str(tmp_path / case / "images" / "c1.nii.gz") in line
        assert str(tmp_path / case / "labels" / "c1.nii.gz") in line
        assert not (tmp_path / case / "out").exists()  # nothing written

    # an unconverted multi-organ label
    _small_pair(tmp_path / "ids", (np.arange(216) % 7).reshape(6, 6, 6).astype(np.uint8))
    r = run_cli("datalist", "--images", tmp_path / "ids" / "images", "--labels",
                tmp_path / "ids" / "labels", "-o", tmp_path / "ids" / "out")
    assert r.exit_code == 2 and "unexpected label ids [3, 4, 5, 6]" in one_error_line(r)

    # no pairs at all
    (tmp_path / "empty_labels").mkdir()
    r = run_cli("datalist", "--images", dataset / "images", "--labels", tmp_path / "empty_labels",
                "-o", tmp_path / "o")
    assert r.exit_code == 2 and "no image/label pairs" in one_error_line(r)

    # an output folder that cannot exist: its parent is a regular file
    (tmp_path / "a_file").write_text("x")
    r = _build(dataset, tmp_path / "a_file" / "out")
    assert r.exit_code == 2 and "is not a folder" in one_error_line(r)

    # too few tumor cases for the default 5 folds
    r = _build(dataset, tmp_path / "o")
    assert r.exit_code == 2 and "only 3 tumor case(s) for 5 folds" in one_error_line(r)

    r = _build(dataset, tmp_path / "o", "--validation-fraction", "1.5")
    assert r.exit_code == 2 and "--validation-fraction" in one_error_line(r)


def test_missing_files_are_named(dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True)
        for p in (dataset / sub).iterdir():
            if "case002" in p.name or "005" in p.name or "case001" in p.name:
                (root / sub / p.name).symlink_to(p.resolve())
    out = root / "lists"
    dl.build_datalist(root / "images", root / "labels", out, folds=0)
    (root / "labels" / "case002.nii.gz").unlink()
    with pytest.raises(InputError, match=r"case002\.nii\.gz: named in .*datalist\.json does not"):
        dl.load_datalist(out / "datalist.json")

    # a broken link in the image folder is a missing file too
    (root / "labels" / "case002.nii.gz").symlink_to(tmp_path / "gone.nii.gz")
    with pytest.raises(InputError, match="broken link"):
        dl.build_datalist(root / "images", root / "labels", out, folds=0)
