"End-to-end: the experiment runner, its resume after an interruption, and the `modan_run` command line."
import os, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

from modan_nb import runner
from modan_nb.config import ALL_METHODS, ExperimentConfig, demo_config, synthetic_tasks
from modan_nb.report import headline_conclusion, summary_text
from modan_nb.runner import cached_encoder, run_experiment
from modan_nb.synth import make_demo_data

COLS = ['method', 'task', 'protocol', 'fraction', 'fold', 'repeat', 'auc']

@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth')
    return make_demo_data(root, n_per_class=4, mrnet=(20, 8), busi=48, ddti=20, seed=0)

def tiny_config(synth, name, **kw):
    d = dict(name=name, methods=['ModAn-MulSupCon', 'Scratch'], protocols=['sklearn', 'linear'],
             tasks={'breast': synthetic_tasks(synth)['breast']}, data=dict(pretrain=str(synth['synthrin']), max_images=None),
             pretrain=dict(epochs=1, bs=32, size=16), transfer=dict(n_folds=2, repeats=2, size=16, epochs=1), embedding=dict(umap=False))
    d.update(kw)
    return demo_config(**d)

def _aucs(res): return res['aucs'][COLS].sort_values(COLS[:-1]).reset_index(drop=True)

def test_interrupted_run_resumes_without_redoing(synth, tmp_path, monkeypatch):
    monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    quiet = dict(progress=False, log=lambda *a: None)
    full = run_experiment(tiny_config(synth, 'full'), **quiet)
    calls = {'n': 0}
    orig = runner._GridProgress.__call__
    def stop_after_3(self, row):
        calls['n'] += 1
        if calls['n'] > 3: raise KeyboardInterrupt
        orig(self, row)
    monkeypatch.setattr(runner._GridProgress, '__call__', stop_after_3)
    with pytest.raises(KeyboardInterrupt): run_experiment(tiny_config(synth, 'cut'), **quiet)
    done = pd.read_csv(tmp_path/'runs'/'cut'/'transfer'/'breast'/'auc.csv')
    assert len(done) == 4   # the unit that raised in the callback was already saved
    monkeypatch.setattr(runner._GridProgress, '__call__', orig)
    seen = []
    monkeypatch.setattr(runner._GridProgress, '__call__', lambda self, row: seen.append(row))
    resumed = run_experiment(tiny_config(synth, 'cut'), **quiet)
    assert len(seen) == len(full['aucs']) - 4          # only the missing units ran
    pd.testing.assert_frame_equal(_aucs(resumed), _aucs(full))

OFFLINE = {'https_proxy': 'http://127.0.0.1:9', 'HTTPS_PROXY': 'http://127.0.0.1:9', 'no_proxy': '', 'NO_PROXY': ''}   # no download on any machine

def test_modan_run_cli(synth, tmp_path):
    cfg = tiny_config(synth, 'cli', methods=['Scratch', 'ModAn-MulSupCon', 'ImageNet'], protocols=['sklearn'])
    cfg.to_yaml(tmp_path/'tiny.yaml')
    env = {**os.environ, 'MODAN_DATA': str(tmp_path/'data'), 'TORCH_HOME': str(tmp_path/'torch'), **OFFLINE}
    exe = Path(sys.executable).parent/'modan_run'      # the console script `pip install` made
    assert exe.exists(), f"{exe} is missing: install the project with pip install -e ."
    out = subprocess.run([str(exe), str(tmp_path/'tiny.yaml')],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'report' in out.stdout and 'wall time:' in out.stdout
    assert 'Downloading' not in out.stdout + out.stderr                # an offline attempt prints nothing like progress
    assert out.stdout.count('not run: ImageNet') == 1                   # one line below the table, not one per cell
    summary = out.stdout[out.stdout.index('AUC [95% CI] pooled'):].strip().splitlines()
    assert len(summary) <= 40 and summary[-1].startswith('wall time:'), summary
    report = (tmp_path/'data'/'runs'/'cli'/'report.md').read_text()
    assert 'ImageNet' in report and 'Configuration' in report and 'torch' in report and '## Headline' in report

def test_bad_config_names_the_setting(tmp_path):
    (tmp_path/'bad.yaml').write_text('name: x\nrepeat: 3\n')
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['repeat'\]"): ExperimentConfig.from_yaml(tmp_path/'bad.yaml')
    (tmp_path/'bad.yaml').write_text('name: x\ntransfer: {repeat: 3}\n')
    with pytest.raises(ValueError, match=r"transfer: unknown setting\(s\) \['repeat'\]"): ExperimentConfig.from_yaml(tmp_path/'bad.yaml')

def test_demo_headline_fits_one_screen():
    "The demo's printed summary (6 methods x 3 tasks, ImageNet not run) stays within 40 lines and 120 columns."
    rows = [dict(task=t, method=m, protocol=p, fraction=1.0, auc=0.7, auc_lo=0.55, auc_hi=0.85, p_adj=np.nan if m == 'ModAn-MulSupCon' else 0.3)
            for t in ('acl', 'breast', 'thyroid') for m in ALL_METHODS if m != 'ImageNet' for p in ('finetune', 'sklearn')]
    head = pd.DataFrame(rows)
    res = dict(headline=head, not_run={'ImageNet': 'ImageNet weights for resnet18 are not available offline: put ...'},
               conclusion=headline_conclusion(head), timings={'data': 10, 'encoders': 90, 'task acl': 60, 'task breast': 40,
               'task thyroid': 30, 'tables and figures': 10, 'embeddings': 20}, report='data/runs/demo/report.md')
    lines = summary_text(res).splitlines() + ['wall time: 250 s']
    assert len(lines) <= 40 and max(map(len, lines)) <= 120, '\n'.join(lines)
    assert sum(l.startswith('not run:') for l in lines) == 1
    assert not any('not run' in l for l in lines if l.startswith(('acl', 'breast', 'thyroid', ' ')))

def test_same_seed_same_tables(synth, tmp_path, monkeypatch):
    monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    quiet = dict(progress=False, log=lambda *a: None)
    a = run_experiment(tiny_config(synth, 'one'), **quiet)
    b = run_experiment(tiny_config(synth, 'two'), **quiet)
    pd.testing.assert_frame_equal(_aucs(a), _aucs(b))
    pd.testing.assert_frame_equal(a['headline'], b['headline'])
    assert a['conclusion'] == b['conclusion']

@pytest.mark.parametrize('damage', ['delete', 'truncate', 'delete with its pretraining folder'])
def test_lost_or_damaged_encoder_is_rebuilt_alone(synth, tmp_path, monkeypatch, damage):
    monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    msgs = []
    cfg = tiny_config(synth, 'enc', protocols=['sklearn'])
    first = run_experiment(cfg, progress=False, log=lambda *a: None)
    run = tmp_path/'runs'/'enc'
    enc, other = run/'encoders'/'modan_mulsupcon.pth', run/'encoders'/'scratch.pth'
    other_stat = other.stat()
    if damage == 'truncate': enc.write_bytes(enc.read_bytes()[:enc.stat().st_size//2])
    else: enc.unlink()
    if damage.endswith('folder'): import shutil; shutil.rmtree(run/'pretrain'/'modan_mulsupcon')
    again = run_experiment(cfg, progress=False, log=lambda *a: msgs.append(' '.join(map(str, a))))
    assert enc.is_file() and cached_encoder('ModAn-MulSupCon', cfg, run, log=lambda *a: None) == enc
    assert other.stat().st_mtime_ns == other_stat.st_mtime_ns           # the other method's encoder is kept as it was
    said = '\n'.join(msgs)
    if damage == 'truncate': assert f"{enc} is damaged" in said and 'rebuilding it' in said and '--fresh is not needed' in said, said
    else: assert f"{enc} is missing: rebuilding" in said, said
    pd.testing.assert_frame_equal(_aucs(again), _aucs(first))         # the rebuilt encoder is the same one
