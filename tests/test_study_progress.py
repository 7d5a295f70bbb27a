"""What the study says while it runs (issue: progress a person can follow)."""
import numpy as np

from regions import _shared
from regions.study import runner
from regions.study.progress import HEARTBEAT_SECONDS, StudyProgress, quiet_engines


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_heartbeat_lines_come_at_a_steady_rate_and_stop_for_job_lines():
    clock, said = _Clock(), []
    p = StudyProgress(said.append, total=3, clock=clock)
    for step in range(1, 101):                      # 100 s of ticks, one per second
        clock.t = float(step)
        if step == 45:
            p.job_done("a done")
        p.tick()
    beats = [s for s in said if s.startswith("study:")]
    # at 30 s (nothing done yet); the job line at 45 s restarts the clock: 75 s
    assert beats == ["study: 0 of 3 jobs done, 30 s elapsed, the first job is still running",
                     "study: 1 of 3 jobs done, 75 s elapsed, about 150 s left"], said
    assert said[1] == "[1/3] a done"
    assert HEARTBEAT_SECONDS == 30.0


def test_a_redirected_study_prints_a_line_per_job_and_the_report(tmp_path, capsys):
    # stderr is captured here (not a terminal): the default progress is plain lines
    runner.run_study("tiny", str(tmp_path / "t"), executor=1, progress=None)
    err = capsys.readouterr().err.splitlines()
    done = [line for line in err if line.startswith("[") and " done in " in line]
    assert [d.split("]")[0] for d in done] == ["[1/4", "[2/4", "[3/4", "[4/4"], err
    assert err[-1].startswith("report: ") and err[-1].endswith(" s)")
    assert not any("\r" in line or "it/s" in line for line in err)     # no tqdm bar


def test_engine_bars_stay_off_inside_the_study(monkeypatch, capsys):
    monkeypatch.setattr(_shared, "stderr_is_terminal", lambda: True)
    assert _shared.show_progress(None)                 # a terminal: engines would draw
    with quiet_engines():
        assert not _shared.show_progress(None)
        assert _shared.show_progress(True)             # asked for explicitly: still drawn
        import regions
        W = np.array([[1.0], [-1.0]])
        regions.partition([(W, np.array([0.1, 0.2])), (np.ones((1, 2)), np.zeros(1))], (-1.0, 1.0))
    assert _shared.show_progress(None)                 # restored afterwards
    assert "layer" not in capsys.readouterr().err
