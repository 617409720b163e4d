"""Reader study (`synthtumor turing`): build on real CT, the API, nothing leaks, bad input."""

from __future__ import annotations

import json
import re
import sqlite3
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import LITS_CT, LITS_LABEL, TS_CT, TS_LIVER, TS_ORGANS
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from synthtumor.cli import app as cli_app
from synthtumor.errors import InputError
from synthtumor.imaging import read_ct, read_labels
from synthtumor.turing.app import create_app
from synthtumor.turing.png import chunk_layout, encode_gray_png
from synthtumor.turing.render import View, find_lesions, render_stack
from synthtumor.turing.report import study_report
from synthtumor.turing.store import AnswerStore
from synthtumor.turing.study import (
    DATABASE,
    KEY,
    MANIFEST,
    clean_reader_name,
    load_study,
    reader_order,
)

runner = CliRunner()
LOCAL = "http://127.0.0.1:8000"  # the server answers only to the names it is bound to
SMALL_VIEW = ["--pixels", "128", "--slices", "9", "--fov-mm", "120", "--window", "-100", "250"]


def make_inputs(folder: Path) -> tuple[Path, Path]:
    """Datalists: LITS 117 as the real list; totalseg_ct with a 0/1 liver as the healthy list."""
    folder.mkdir(parents=True, exist_ok=True)
    organs = nib.load(TS_ORGANS)
    liver = (np.asarray(organs.dataobj) == TS_LIVER).astype(np.uint8)
    nib.save(nib.Nifti1Image(liver, organs.affine), folder / "ts_liver.nii.gz")
    real, healthy = folder / "real.json", folder / "healthy.json"
    real.write_text(json.dumps({"training": [{"image": str(LITS_CT), "label": str(LITS_LABEL)}]}))
    healthy.write_text(json.dumps(
        {"training": [{"image": str(TS_CT), "label": str(folder / "ts_liver.nii.gz")}]}))
    return real, healthy


def build_small_study(folder: Path, *extra: str) -> Path:
    """3 real cases (3 lesions of LITS 117) + 3 synthetic (3 draws into totalseg_ct)."""
    real, healthy = make_inputs(folder / "inputs")
    study = folder / "study"
    result = runner.invoke(cli_app, [
        "turing", "build", "--real", str(real), "--healthy", str(healthy), "-o", str(study),
        "--synthetic-per-case", "3", "--lesions-per-real", "3", "--seed", "7", *extra])
    assert result.exit_code == 0, result.output
    assert "6 cases (3 real, 3 synthetic" in " ".join(result.output.split())
    return study


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_study(tmp_path_factory.mktemp("turing"), *SMALL_VIEW)


def fresh_copy(study: Path, tmp_path: Path) -> Path:
    """A copy of the study without answers, so tests do not share a database."""
    import shutil

    dst = tmp_path / "study"
    shutil.copytree(study, dst, ignore=shutil.ignore_patterns(f"{DATABASE}*", "report"))
    return dst


# ------------------------------------------------------------------------------ pure parts


def test_png_has_fixed_layout_and_round_trips() -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    flat = np.zeros((64, 80), np.uint8)
    a, b = encode_gray_png(noise), encode_gray_png(flat)
    # stored deflate: same shape -> same byte count and chunks, whatever the pixels
    assert len(a) == len(b)
    assert chunk_layout(a) == chunk_layout(b) == [("IHDR", 13), ("IDAT", len(a) - 8 - 12 * 3 - 13),
                                                  ("IEND", 0)]
    import io

    img = Image.open(io.BytesIO(a))
    assert img.mode == "L" and img.size == (80, 64) and not img.info  # no text/time chunks
    assert np.array_equal(np.asarray(img), noise)
    assert zlib.crc32(a[-8:-4]) == struct.unpack(">I", a[-4:])[0]  # IEND CRC


def test_lesions_of_lits117_and_the_rendered_slices() -> None:
    ct = read_ct(LITS_CT)
    labels = read_labels(LITS_LABEL, ct).array
    lesions = find_lesions(labels, ct.affine, max_count=3, min_distance_mm=30.0)
    assert len(lesions) == 3
    # largest component of LiTS 117: 52 129 voxels of nominal 1 mm
    assert lesions[0].voxels == 52129 and lesions[0].volume_ml == pytest.approx(52.129)
    assert lesions[0].volume_ml > lesions[1].volume_ml > lesions[2].volume_ml
    for a in lesions:
        for b in lesions:
            if a is not b:
                assert np.linalg.norm(np.subtract(a.centre_mm, b.centre_mm)) >= 30.0
    view = View(fov_mm=64.0, pixels=64, slices=5, slice_mm=2.0)
    stack = render_stack(ct.array, ct.affine, lesions[0].centre_mm, view)
    assert stack.shape == (5, 64, 64) and stack.dtype == np.uint8
    # the middle slice's centre pixel is the CT value at the lesion centre (1 mm grid)
    ijk = np.linalg.solve(ct.affine, [*lesions[0].centre_mm, 1.0])[:3]
    i, j, k = (int(round(v)) for v in ijk)
    assert abs(int(stack[2, 32, 32]) - np.clip((ct.array[i, j, k] + 100) / 350, 0, 1) * 255) < 40


@pytest.mark.parametrize("path", [LITS_CT, TS_CT], ids=["lits_-1-1+1_1mm", "totalseg_3mm"])
def test_slices_are_radiological_and_in_mm_whatever_the_grid(path: Path) -> None:
    """A CT whose value is a world coordinate shows the display axes exactly (trilinear is exact
    on a linear field): columns go to the patient's left, rows posterior, slices superior."""
    ct = read_ct(path)
    centre = ct.world(np.array(ct.shape) / 2.0)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in ct.shape], indexing="ij"), axis=-1)
    world = ct.world(grid.reshape(-1, 3)).reshape(*ct.shape, 3)
    view = View(fov_mm=32.0, pixels=32, slices=3, slice_mm=4.0, window_hu=(0.0, 255.0))
    for axis, sign in ((0, -1), (1, -1), (2, 1)):
        # 1 "HU" per mm; +0.25 keeps pixel centres (half-mm offsets) off rounding ties
        field = world[..., axis] - centre[axis] + 128.25
        img = render_stack(field, ct.affine, tuple(centre), view).astype(int)
        step = {0: img[1, 5, 1:] - img[1, 5, :-1], 1: img[1, 1:, 5] - img[1, :-1, 5],
                2: img[1:, 5, 5] - img[:-1, 5, 5]}[axis]
        assert np.all(step == sign * (4 if axis == 2 else 1)), (axis, step)
    assert render_stack(ct.array, ct.affine, (1e4, 0.0, 0.0), view).max() == 0  # outside: air


def test_reader_names_are_cleaned_and_limited() -> None:
    assert clean_reader_name("  Dr.  Ann   O'Neil ") == "Dr. Ann O'Neil"
    assert clean_reader_name("Zoë-2") == "Zoë-2"
    for bad in ["", "   ", "x" * 41, "<script>", "a/b", "a\x00b", 7, "../key", "..", ". -"]:
        with pytest.raises(ValueError):
            clean_reader_name(bad)


# ------------------------------------------------------------------------------ the study


def test_built_study_layout_key_and_images(study: Path) -> None:
    manifest = json.loads((study / MANIFEST).read_text())
    key = json.loads((study / KEY).read_text())["cases"]
    ids = manifest["cases"]
    assert len(ids) == 6 and ids == sorted(ids) and set(ids) == set(key)
    assert all(re.fullmatch(r"[0-9a-f]{16}", c) for c in ids)
    assert (study / KEY).stat().st_mode & 0o077 == 0  # key readable by its owner only
    assert sorted(v["truth"] for v in key.values()) == ["real"] * 3 + ["synthetic"] * 3
    assert manifest["view"] == {"fov_mm": 120.0, "pixels": 128, "slices": 9, "slice_mm": 2.0,
                                "window_hu": [-100.0, 250.0]}
    assert "real" not in json.dumps(manifest) and "synthetic" not in json.dumps(manifest)
    for case_id, rec in key.items():
        files = sorted((study / "slices" / case_id).iterdir())
        assert [f.name for f in files] == [f"{k:03d}.png" for k in range(9)]
        assert rec["lesion"]["volume_ml"] >= 0.1
        if rec["truth"] == "synthetic":
            # the shown lesion is the largest synthesized tumor (clipped to the liver)
            assert rec["tumor_type"] in {"tiny", "small", "medium", "large", "mix"}
            assert len(rec["tumors"]) >= 1 and Path(rec["image"]) == TS_CT
        else:
            assert Path(rec["label"]) == LITS_LABEL
    # the real cases show three different LiTS lesions: 52.1, 37.2 and 11.4 ml
    vols = sorted(r["lesion"]["volume_ml"] for r in key.values() if r["truth"] == "real")
    assert vols == pytest.approx([11.43, 37.179, 52.129])


def _crawl(client: TestClient, reader: str) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """Every URL a reader's browser fetches, with status, headers and body."""
    seen: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def get(url: str, method: str = "GET", body: dict | None = None) -> bytes:
        r = client.request(method, url, json=body)
        seen[f"{method} {url}"] = (r.status_code, dict(r.headers), r.content)
        assert r.status_code == 200, (url, r.text)
        return r.content

    page = get("/").decode()
    for ref in re.findall(r'(?:src|href)="([^"]+)"', page):
        get(ref)
    info = json.loads(get("/api/study"))
    progress = json.loads(get("/api/readers", "POST", {"name": reader}))
    get(f"/api/readers/{reader}")
    for case_id in progress["order"]:
        for k in range(info["slices"]):
            get(f"/api/cases/{case_id}/slices/{k}")
    return seen


def test_nothing_served_reveals_the_key(study: Path, tmp_path: Path) -> None:
    s = fresh_copy(study, tmp_path)
    key = json.loads((s / KEY).read_text())
    truth = {c: v["truth"] for c, v in key["cases"].items()}
    seen = _crawl(TestClient(create_app(s), base_url=LOCAL), "Reader One")
    sources = {Path(v[f]).name for v in key["cases"].values() for f in ("image", "label")}
    secrets_ = [b"key.json", b"truth", b"tumor_type", b"lesion", b"/work/", b"/tmp",
                str(s).encode(), *(n.encode() for n in sources), b"lits", b"totalseg"]
    for url, (_status, headers, body) in seen.items():
        blob = body + json.dumps(headers).encode() + url.encode()
        for word in secrets_:
            assert word.lower() not in blob.lower(), (url, word)
        assert not {"etag", "last-modified"} & set(headers), url  # no file dates or inodes
    # per-case payloads: no class words at all, and the same size, layout and headers
    pngs = {u: v for u, v in seen.items() if "/slices/" in u}
    assert len(pngs) == 6 * 9
    layouts = {tuple(chunk_layout(body)) for _, _, body in pngs.values()}
    sizes = {len(body) for _, _, body in pngs.values()}
    headers = {json.dumps(h, sort_keys=True) for _, h, _ in pngs.values()}
    assert len(layouts) == len(sizes) == len(headers) == 1
    assert [c for c, _ in next(iter(layouts))] == ["IHDR", "IDAT", "IEND"]
    for url, (_s, _h, body) in seen.items():
        if url.startswith("GET /api/cases") or url.startswith(("POST /api/readers",
                                                              "GET /api/readers")):
            assert b"real" not in body and b"synthetic" not in body, url
    # the order a reader gets is a permutation from seed + name, not the class order
    study_obj = load_study(s)
    assert reader_order(study_obj, "Reader One") == json.loads(
        seen["POST /api/readers"][2])["order"]
    assert sorted(reader_order(study_obj, "Reader Two")) == sorted(truth)
    assert reader_order(study_obj, "Reader Two") != reader_order(study_obj, "Reader One")
    # decisive check: flip the key; every served byte and header stays the same
    key["cases"] = {c: {**v, "truth": "real" if v["truth"] == "synthetic" else "synthetic"}
                    for c, v in key["cases"].items()}
    (s / KEY).write_text(json.dumps(key))
    (s / DATABASE).unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{s / DATABASE}{suffix}").unlink(missing_ok=True)
    again = _crawl(TestClient(create_app(s), base_url=LOCAL), "Reader One")
    assert again.keys() == seen.keys()
    for url in seen:
        assert again[url] == seen[url], url


def test_key_and_study_files_are_not_reachable(study: Path, tmp_path: Path) -> None:
    s = fresh_copy(study, tmp_path)
    client = TestClient(create_app(s), base_url=LOCAL)
    case_id = load_study(s).case_ids[0]
    key_text = (s / KEY).read_text()
    probes = [
        "/key.json", "/study.json", "/answers.sqlite", f"/{KEY}", "/static/../key.json",
        "/%2e%2e/key.json", "/..%2fkey.json", "/api/..%2f..%2fkey.json", "/api/key.json",
        f"/slices/{case_id}/000.png", f"/api/cases/{case_id}/slices/..%2f..%2f..%2fkey.json",
        "/api/cases/..%2f..%2fkey.json/slices/0", f"/api/cases/{case_id}/slices/9",
        f"/api/cases/{case_id}/slices/-1", f"/api/cases/{case_id}/slices/%D9%A3",
        "/api/cases/0000000000000000/slices/0", "/docs", "/openapi.json", "/redoc",
        "/app.js/../key.json", "/index.html/..%2f..%2fkey.json",
    ]
    for url in probes:
        r = client.get(url)
        assert r.status_code == 404, (url, r.status_code)
        assert "truth" not in r.text and key_text[:40] not in r.text


def _rows(study: Path) -> int:
    with sqlite3.connect(study / DATABASE) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])


def test_answers_are_validated_and_stored_once(study: Path, tmp_path: Path) -> None:
    s = fresh_copy(study, tmp_path)
    client = TestClient(create_app(s), base_url=LOCAL)
    ids = load_study(s).case_ids
    assert client.post("/api/readers", json={"name": "  Ann  Lee "}).json()["reader"] == "Ann Lee"
    ok = client.put(f"/api/readers/Ann Lee/answers/{ids[0]}", json={"answer": "real"})
    assert ok.status_code == 200 and ok.json() == {"answered": 1, "total": 6}
    assert _rows(s) == 1
    bad = [
        ("put", "/api/readers/Ann Lee/answers/0123456789abcdef", {"answer": "real"}, 404),
        ("put", f"/api/readers/Nobody/answers/{ids[1]}", {"answer": "real"}, 404),
        ("put", f"/api/readers/Ann Lee/answers/{ids[1]}", {"answer": "REAL"}, 422),
        ("put", f"/api/readers/Ann Lee/answers/{ids[1]}", {"answer": "maybe"}, 422),
        ("put", f"/api/readers/Ann Lee/answers/{ids[1]}", {"answer": "real", "x": 1}, 422),
        ("put", f"/api/readers/Ann Lee/answers/{ids[1]}", {}, 422),
        ("put", f"/api/readers/<b>/answers/{ids[1]}", {"answer": "real"}, 422),
        ("post", "/api/readers", {"name": "x" * 41}, 422),
        ("post", "/api/readers", {"name": "<script>alert(1)</script>"}, 422),
        ("post", "/api/readers", {"name": ""}, 422),
        ("post", "/api/readers", {"name": 12}, 422),
    ]
    for method, url, body, status in bad:
        r = client.request(method.upper(), url, json=body)
        assert r.status_code == status, (url, body, r.text)
        assert _rows(s) == 1
    assert client.get("/api/readers/Nobody").status_code == 404
    # a second answer to the same case replaces the first: still one row per reader x case
    client.put(f"/api/readers/Ann Lee/answers/{ids[0]}", json={"answer": "unsure"})
    assert _rows(s) == 1
    assert AnswerStore(s / DATABASE).answers() == {"Ann Lee": {ids[0]: "unsure"}}
    with sqlite3.connect(s / DATABASE) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    progress = client.get("/api/readers/Ann Lee").json()
    assert progress["answered"] == 1 and progress["answers"] == {ids[0]: "unsure"}
    assert progress["next"] == (1 if progress["order"][0] == ids[0] else 0)


def test_report_counts_match_hand_computation(study: Path, tmp_path: Path) -> None:
    s = fresh_copy(study, tmp_path)
    truth = {c: v["truth"] for c, v in json.loads((s / KEY).read_text())["cases"].items()}
    real = sorted(c for c, t in truth.items() if t == "real")
    syn = sorted(c for c, t in truth.items() if t == "synthetic")
    store = AnswerStore(s / DATABASE)
    store.add_reader("A")
    store.add_reader("B")
    # A: spots 2 synthetic, fooled by 1, calls 1 real synthetic, 1 real real, 1 unsure
    for c, a in zip(syn + real, ["synthetic", "synthetic", "real", "synthetic", "real", "unsure"]):
        store.save("A", c, a)
    # B answers two cases only
    store.save("B", syn[0], "real")
    store.save("B", real[0], "real")
    result = runner.invoke(cli_app, ["turing", "report", str(s), "-o", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert "fooled" in result.output and "2 of 4" in result.output
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep == json.loads(json.dumps(study_report(s)))
    a = rep["readers"]["A"]
    assert (a["tp"], a["fn"], a["fp"], a["tn"], a["unsure"]) == (2, 1, 1, 1, 1)
    assert a["accuracy"] == pytest.approx(3 / 5)  # unsure left out
    assert a["accuracy_unsure_wrong"] == pytest.approx(3 / 6)
    assert a["sensitivity"] == pytest.approx(2 / 3) and a["specificity"] == pytest.approx(1 / 2)
    assert a["fooled"] == {"k": 1, "n": 3}
    assert a["table"]["real"] == {"real": 1, "synthetic": 1, "unsure": 1}
    b = rep["readers"]["B"]
    assert (b["answered"], b["unanswered"], b["sensitivity"], b["specificity"]) == (2, 4, 0.0, 1.0)
    o = rep["overall"]
    assert (o["tp"], o["fn"], o["fp"], o["tn"], o["unsure"]) == (2, 2, 1, 2, 1)
    assert o["fooled"] == {"k": 2, "n": 4} and o["accuracy"] == pytest.approx(4 / 7)
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<td>A</td>" in html and "all readers" in html and "unsure" in html


# ------------------------------------------------------------------------------ bad input


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for n in needles:
        assert n in result.output.replace("\n", ""), result.output


def test_commands_refuse_a_folder_that_is_not_a_study(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    for cmd in ("serve", "report"):
        _one_line_error(runner.invoke(cli_app, ["turing", cmd, str(tmp_path)]),
                        "is not a reader study")
    with pytest.raises(InputError, match="does not exist"):
        create_app(tmp_path / "missing")
    (tmp_path / MANIFEST).write_text('{"format": "something-else"}')
    with pytest.raises(InputError, match="not a reader study"):
        load_study(tmp_path)


def test_build_refuses_a_real_case_without_tumor_and_a_healthy_case_with_one(
    tmp_path: Path,
) -> None:
    real, healthy = make_inputs(tmp_path / "in")
    out = tmp_path / "study"
    # totalseg_ct with its 0/1 liver listed as a real-tumor case: one line naming its label
    args = ["turing", "build", "--real", str(healthy), "--healthy", str(healthy), "-o", str(out)]
    _one_line_error(runner.invoke(cli_app, args), "ts_liver.nii.gz", "has no tumor (label 2)")
    # LiTS (with tumor) listed as healthy
    args = ["turing", "build", "--real", str(real), "--healthy", str(real), "-o", str(out)]
    _one_line_error(runner.invoke(cli_app, args), "lits117_label.nii.gz", "holds tumor voxels")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    (tmp_path / "empty.json").write_text('{"training": []}')
    args = ["turing", "build", "--real", str(tmp_path / "empty.json"), "--healthy", str(healthy),
            "-o", str(out)]
    _one_line_error(runner.invoke(cli_app, args), "empty.json")
    args = ["turing", "build", "--real", str(real), "--healthy", str(healthy), "-o", str(out),
            "--window", "250", "-100"]
    _one_line_error(runner.invoke(cli_app, args), "high > low")


def test_build_uses_the_shared_synthesis_options(tmp_path: Path) -> None:
    """`turing build --reference --type large --count 1`: the synthetic cases are drawn with
    that config (reference method, one large tumor), not the built-in realistic default."""
    real, healthy = make_inputs(tmp_path / "inputs")
    study = tmp_path / "study"
    result = runner.invoke(cli_app, [
        "turing", "build", "--real", str(real), "--healthy", str(healthy), "-o", str(study),
        "--reference", "--type", "large", "--count", "1", *SMALL_VIEW])
    assert result.exit_code == 0, result.output
    key = json.loads((study / KEY).read_text())
    synthetic = [c for c in key["cases"].values() if c["truth"] == "synthetic"]
    assert len(synthetic) == 1
    (case,) = synthetic
    assert case["tumor_type"] == "large" and len(case["tumors"]) == 1
    assert case["tumors"][0]["size_class"] == "large"
    assert not set(case["tumors"][0]["effects"]) & {"mass_effect", "capsule", "necrosis"}
