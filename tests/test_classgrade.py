"""Class grading on the tiny course: a generated class with honest, empty, partial, broken,
malicious and missing submissions; expected grades, resume, LMS zips, Dask, and nbgrader's own
formgrader, generate_feedback and export on the result."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import copy_with, run_autograde

pytestmark = pytest.mark.slow

GOOD = {
    "square": '''def square(x):
    return np.asarray(x, dtype=float) * np.asarray(x, dtype=float)''',
    "sigmoid": '''def sigmoid(x):
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))''',
    "predict_depth": 'answer_depth = "b"',
    "why_relu": "It does not saturate for positive inputs, and it is cheap.",
}
SIGN_SLIP = '''def sigmoid(x):
    return 1 / (1 + np.exp(np.asarray(x, dtype=float)))'''  # right at 0 only
# Starts a detached process meant to outlive the kernel and overwrite the grades later, and
# patches the check helpers in the student's kernel.
TOKEN = "tug-detached-7f3a"
MALICIOUS = GOOD["square"] + """
import subprocess, sys
code = "import sys, time\\ntime.sleep(30)\\nfor p in sys.argv[2:]:\\n    open(p, 'w').write('x')"
subprocess.Popen([sys.executable, '-c', code, 'TOKEN', '{out}/grades.csv',
                  '{out}/nbgrader/gradebook.db'], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
import course_utils.testing as t
t.check_close = t.check_equal = lambda *a, **k: None
t._check = lambda *a, **k: None
""".replace("TOKEN", TOKEN)
CRASH = '''def sigmoid(x):
    import os
    os._exit(1)'''
PRINTY = '''def square(x):
    import sys, warnings
    print("computing square", x)
    print("debug", file=sys.stderr)
    warnings.warn("just a warning")
    return np.asarray(x, dtype=float) ** 2'''

EXPECTED = {  # student: (score, status) out of 7 autograded points
    "ada": (7.0, "graded"),  # honest, everything right (7 = 6 + 1 for the prediction)
    "ben": (0.0, "graded"),  # the released notebook, untouched
    "cam": (5.0, "graded"),  # sigmoid's sign slip passes at 0 only: loses the hidden 2
    "dee": (0.0, "invalid_notebook"),  # not JSON at all
    # the detached process and the patched helpers are statements no test needs: they never
    # run (issue 10), and square's own definition beside them earns its 3 points
    "eve": (3.0, "graded"),
    "fay": (0.0, "missing"),  # a folder with no notebook
    "gus": (0.0, "missing"),  # only on the roster
    "hal": (4.0, "kernel_died"),  # os._exit in sigmoid: only sigmoid's 3 points are lost
    "ivy": (7.0, "graded"),  # prints, warns, writes to stderr: full marks
}


@pytest.fixture(scope="module")
def env(mini_course):
    return {"TUG_COURSE_ROOT": str(mini_course)}


def _build_class(mini_course, root: Path) -> Path:
    rel = mini_course / "notebooks" / "01_mini" / "01_mini.ipynb"
    sub = root / "submitted"

    def put(student, cells, base=rel):
        return copy_with(base, sub / student / "01_mini" / "01_mini.ipynb", cells)

    put("ada", GOOD)
    put("ben", {})
    put("cam", dict(GOOD, sigmoid=SIGN_SLIP))
    (sub / "dee" / "01_mini").mkdir(parents=True)
    (sub / "dee" / "01_mini" / "01_mini.ipynb").write_text("{ this is not a notebook")
    put("eve", {"square": MALICIOUS.format(out=root / "out")})
    (sub / "fay" / "01_mini").mkdir(parents=True)
    put("hal", dict(GOOD, sigmoid=CRASH))
    put("ivy", dict(GOOD, square=PRINTY))
    (root / "roster.csv").write_text("student_id,name\n" + "".join(
        f"{s},{s.title()}\n" for s in EXPECTED))
    return sub


def _grades(out: Path) -> dict[str, tuple[float, str]]:
    with open(out / "grades.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:5] == ["student_id", "assignment", "score", "max_score", "status"]
    return {r["student_id"]: (float(r["score"]), r["status"]) for r in rows}


@pytest.fixture(scope="module")
def graded(mini_course, env, tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    sub = _build_class(mini_course, root)
    out = root / "out"
    proc = run_autograde(["grade", str(sub), "--out", str(out), "--roster",
                          str(root / "roster.csv"), "--workers", "2", "--timeout", "30"],
                         env=env)
    survivors = _processes_with(TOKEN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"root": root, "sub": sub, "out": out, "proc": proc, "env": env,
            "survivors": survivors}


def _processes_with(token: str) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if token in cmd and "pytest" not in cmd:
            found.append(f"{p.name}: {cmd[:80]}")
    return found


def test_every_student_gets_the_expected_grade(graded):
    assert _grades(graded["out"]) == EXPECTED, graded["proc"].stdout
    with open(graded["out"] / "grades.csv") as fh:  # the roster's other columns come along
        names = {r["student_id"]: r["name"] for r in csv.DictReader(fh)}
    assert names == {s: s.title() for s in EXPECTED}


def test_progress_and_summary_are_printed(graded):
    out = graded["proc"].stdout
    assert "Protections:" in out and "1 missing" not in out
    assert "7/7 submission" not in out  # the progress lines count graded notebooks
    assert "[" in out and "] 7/7" in out.replace(" ", "").replace("]7/7", "] 7/7")
    assert "Done in" in out and "2 missing" in out and "1 invalid_notebook" in out


def test_detached_process_cannot_touch_grades(graded):
    out = graded["out"]
    assert not graded["survivors"], "a process started by student code outlived grading"
    assert (out / "grades.csv").read_text().startswith("student_id")
    con = sqlite3.connect(out / "nbgrader" / "gradebook.db")
    assert con.execute("select count(*) from student").fetchone()[0] == len(EXPECTED)


def test_scores_csv_has_one_row_per_test(graded):
    with open(graded["out"] / "scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    cam = {r["grade_id"]: r for r in rows if r["student_id"] == "cam"}
    assert cam["test_sigmoid_hidden"]["score"] == "0" and cam["test_sigmoid"]["score"] == "1"
    assert cam["test_square_hidden"]["passed"] == "1"


def test_feedback_never_reveals_hidden_tests(graded, mini_course):
    page = (graded["out"] / "feedback" / "cam" / "01_mini" / "01_mini.html").read_text()
    assert "5 / 7" in page and "test_sigmoid_hidden" in page
    for secret in ("1e4", "torch.sigmoid", "BEGIN HIDDEN", "linspace(-3, 3, 7)"):
        assert secret not in page, secret
    auto = graded["out"] / "nbgrader" / "autograded" / "cam" / "01_mini" / "01_mini.ipynb"
    assert "torch.sigmoid" not in auto.read_text()


def test_rerun_is_idempotent_and_regrades_only_changes(graded):
    out, sub = graded["out"], graded["sub"]
    before = _grades(out)
    copy_with(sub / "ben" / "01_mini" / "01_mini.ipynb",
              sub / "ben" / "01_mini" / "01_mini.ipynb", GOOD)
    proc = run_autograde(["grade", str(sub), "--out", str(out), "--roster",
                          str(graded["root"] / "roster.csv"), "--workers", "2", "--timeout",
                          "30"], env=graded["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 submission(s) to grade, 6 unchanged" in proc.stdout, proc.stdout
    after = _grades(out)
    assert after["ben"] == (7.0, "graded")
    assert {k: v for k, v in after.items() if k != "ben"} == \
        {k: v for k, v in before.items() if k != "ben"}
    backups = list((out / "nbgrader" / "backups").glob("gradebook-*.db"))
    assert backups, "the gradebook was not backed up before it was written"


def test_killed_grader_resumes_where_it_stopped(mini_course, env, tmp_path):
    sub = _build_class(mini_course, tmp_path)
    out = tmp_path / "out"
    full_env = dict(os.environ, **env)
    proc = subprocess.Popen([sys.executable, "-m", "autograde", "grade", str(sub), "--out",
                             str(out), "--workers", "1"], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(out.glob("results/*/*.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, 9)
    proc.wait()
    done = len(list(out.glob("results/*/*.json")))
    assert 2 <= done < 7
    again = run_autograde(["grade", str(sub), "--out", str(out), "--workers", "2"], env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "unchanged since the last run" in again.stdout
    assert f"{7 - done} submission(s) to grade" in again.stdout or done == 7, again.stdout
    got = _grades(out)
    assert {k: v for k, v in got.items()} == {k: v for k, v in EXPECTED.items() if k != "gus"}


def test_nbgrader_export_feedback_and_formgrader_work(graded):
    nbg = graded["out"] / "nbgrader"
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    env["JUPYTER_CONFIG_DIR"] = str(nbg / ".jupyter")
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "export"], cwd=nbg, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(nbg / "grades.csv") as fh:
        exported = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert float(exported["cam"]["raw_score"]) == 5.0
    assert float(exported["ada"]["raw_score"]) == 7.0
    assert float(exported["ada"]["max_score"]) == 9.0  # 7 autograded + 2 graded by hand
    assert float(exported["gus"]["raw_score"]) == 0.0

    # formgrader: nbgrader's own server extension lists the submissions and takes a manual
    # grade for the free-text answer
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", f"--port={port}",
         "--ServerApp.token=tug", "--ServerApp.password=", "--allow-root",
         f"--ServerApp.root_dir={nbg}"], cwd=nbg, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        subs = _get_json(f"{base}/formgrader/api/submissions/01_mini?token=tug", timeout=90)
        by_student = {s["student"]: s for s in subs}
        assert by_student["ada"]["autograded"] is True, by_student["ada"]
        assert by_student["ada"]["code_score"] == 7.0 and by_student["cam"]["code_score"] == 5
        assert by_student["ada"]["needs_manual_grade"] is True  # the free-text answer
        nb_subs = _get_json(f"{base}/formgrader/api/submitted_notebooks/01_mini/01_mini"
                            "?token=tug")
        ada = next(s for s in nb_subs if s["student"] == "ada")
        page = urllib.request.urlopen(
            f"{base}/formgrader/submissions/{ada['id']}/?token=tug", timeout=60).read().decode()
        assert "why_relu" in page or "Why is ReLU popular" in page
        grades = _get_json(f"{base}/formgrader/api/grades?submission_id={ada['id']}&token=tug")
        manual = next(g for g in grades if g["name"] == "why_relu")
        req = urllib.request.Request(
            f"{base}/formgrader/api/grade/{manual['id']}?token=tug", method="PUT",
            data=json.dumps({"manual_score": 2.0, "extra_credit": 0}).encode(),
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=60).read()
    finally:
        server.terminate()
        server.wait(30)
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "export"], cwd=nbg, env=env,
                          capture_output=True, text=True, timeout=300)
    with open(nbg / "grades.csv") as fh:
        exported = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert float(exported["ada"]["raw_score"]) == 9.0

    # re-grading keeps the manual grade
    rerun = run_autograde(["grade", str(graded["sub"]), "--out", str(graded["out"]),
                           "--timeout", "30"], env=graded["env"])
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    con = sqlite3.connect(nbg / "gradebook.db")
    assert con.execute("select manual_score, needs_manual_grade from grade "
                       "where manual_score is not null").fetchall() == [(2.0, 0)]

    proc = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", "01_mini",
                           "--force"], cwd=nbg, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pages = list((nbg / "feedback").rglob("*.html"))
    assert len(pages) == 7
    for page in pages:
        text = page.read_text()
        assert "torch.sigmoid" not in text and "1e4" not in text


def test_lms_zip_downloads(mini_course, env, tmp_path):
    sol = mini_course / "solutions" / "01_mini" / "01_mini.ipynb"
    rel = mini_course / "notebooks" / "01_mini" / "01_mini.ipynb"
    good = copy_with(rel, tmp_path / "good.ipynb", GOOD).read_bytes()
    empty = rel.read_bytes()
    dl = tmp_path / "downloads"
    dl.mkdir()
    with zipfile.ZipFile(dl / "canvas_submissions.zip", "w") as zf:  # Canvas: flat names
        zf.writestr("lovelaceada_1234_5678_01_mini.ipynb", good)
        zf.writestr("babbagec_late_2345_6789_01_mini-1.ipynb", empty)
    with zipfile.ZipFile(dl / "moodle.zip", "w") as zf:  # Moodle: a folder per student
        zf.writestr("Grace Hopper_4242_assignsubmission_file_/01_mini.ipynb", good)
        zf.writestr("../evil.ipynb", good)  # path traversal: ignored
    assert sol.exists()
    out = tmp_path / "out"
    proc = run_autograde(["grade", str(dl), "--out", str(out)], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _grades(out) == {"lovelaceada": (7.0, "graded"), "babbagec": (0.0, "graded"),
                            "Grace_Hopper_4242": (7.0, "graded")}
    assert not (tmp_path / "evil.ipynb").exists()


def test_dask_executor_with_a_local_cluster(graded, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, env=graded["env"]) as cluster:
        address = cluster.scheduler_address.replace("tcp://", "dask://")
        out = tmp_path / "out"
        proc = run_autograde(["grade", str(graded["sub"]), "--out", str(out), "--roster",
                              str(graded["root"] / "roster.csv"), "--executor", address],
                             env=graded["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = _grades(out)
    assert got == dict(_grades(graded["out"]), ben=got["ben"])


def test_bad_input_says_what_to_do(graded, tmp_path):
    proc = run_autograde(["grade", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
                         env=graded["env"])
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = run_autograde(["grade", str(graded["sub"]), "--out", str(tmp_path / "o"),
                          "--executor", "spark://x"], env=graded["env"])
    assert proc.returncode == 2 and "unknown --executor" in proc.stderr
    proc = run_autograde(["grade", str(graded["sub"]), "--out", str(tmp_path / "o"),
                          "--assignment", "99_nope"], env=graded["env"])
    assert proc.returncode == 2 and "unknown assignment" in proc.stderr
    proc = run_autograde(["grade", str(graded["sub"]), "--out", str(tmp_path / "o"),
                          "--workers", "0"], env=graded["env"])
    assert proc.returncode == 2 and "must be positive" in proc.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(urllib.request.urlopen(url, timeout=30).read())
        except (OSError, json.JSONDecodeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


__all__ = ["shutil"]
