"Issue 19: two runs on one folder. A run holds its folder's lock for its life; a second `modan_run` / `modan_pretrain` on it is refused at once naming the holder; a dead holder's lock is taken over."
import os, sys, signal, subprocess, time, json
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), MODAN_DEVICE='cpu', MPLBACKEND='Agg')

HOLD = """
import sys, time
from modan_nb.core import run_lock
with run_lock(sys.argv[1]):
    print('held', flush=True)
    sys.stdin.read()
"""

def holder(folder, env):
    "A process that holds `folder`'s lock until its stdin closes."
    p = subprocess.Popen([sys.executable, '-c', HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == 'held'
    return p

def cli(*args, env):
    exe = Path(sys.executable).parent
    t = time.time()
    r = subprocess.run([str(exe/args[0]), *args[1:]], capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    return r, time.time() - t

def test_second_modan_run_is_refused(tmp_path):
    env = dict(ENV, MODAN_DATA=str(tmp_path/'data'))
    run = tmp_path/'data'/'runs'/'locked'   # --name wins over --demo's _demo suffix
    p = holder(run, env)
    try:
        r, secs = cli('modan_run', 'configs/paper.yaml', '--demo', '--name', 'locked', env=env)
        assert r.returncode != 0
        assert f'pid {p.pid}' in r.stderr and 'in use by another run' in r.stderr, r.stderr[-2000:]
        assert 'Traceback' not in r.stderr
        assert not (tmp_path/'data'/'synthrin').exists() and not (run/'config.yaml').exists()   # refused before anything was made
    finally: p.stdin.close(); p.wait()
    assert not (run/'.modan.lock').exists()

def test_second_modan_pretrain_is_refused(tmp_path):
    p = holder(tmp_path/'run', ENV)
    try:
        r, _ = cli('modan_pretrain', '--data', str(tmp_path/'table.csv'), '--path', str(tmp_path/'run'), env=ENV)
        assert r.returncode != 0 and f'pid {p.pid}' in r.stderr and 'in use by another' in r.stderr, r.stderr[-2000:]
    finally: p.stdin.close(); p.wait()

def test_dead_holder_is_taken_over(tmp_path):
    p = holder(tmp_path/'run', ENV)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    lock = tmp_path/'run'/'.modan.lock'
    assert json.loads(lock.read_text())['pid'] == p.pid           # left behind by the killed run
    q = holder(tmp_path/'run', dict(ENV, PYTHONWARNINGS='always'))
    try: assert json.loads(lock.read_text())['pid'] == q.pid
    finally: q.stdin.close(); q.wait()

def test_pretrain_holds_its_folder(tmp_path):
    "In-process: `pretrain` on a folder another process holds is refused before reading its data."
    from modan_nb.core import RunLocked
    from modan_nb.learner import pretrain
    p = holder(tmp_path/'run', ENV)
    try:
        with pytest.raises(RunLocked, match=f'pid {p.pid}'): pretrain('modan', tmp_path/'missing.csv', path=tmp_path/'run', epochs=1)
    finally: p.stdin.close(); p.wait()

def test_a_waiting_run_gets_the_folder_once_the_holder_is_done(tmp_path):
    "`run_lock(folder, wait=s)` waits for a live holder on this machine (two notebooks making the same demo encoder), then takes it."
    import threading
    from modan_nb.core import run_lock, RunLocked
    run = tmp_path/'shared_run'
    p = holder(run, ENV)
    with pytest.raises(RunLocked, match=f'pid {p.pid}'):
        with run_lock(run): pass                                   # no wait: refused at once
    threading.Timer(1.5, p.stdin.close).start()                     # the holder finishes in 1.5 s
    t = time.time()
    with run_lock(run, wait=30) as f: got = json.loads(f.read_text())['pid']
    p.wait()
    assert got == os.getpid() and 1 < time.time() - t < 20
    assert not (run/'.modan.lock').exists()
