"End-to-end: the experiment runner, its resume after an interruption, and the `modan_run` command line."
import os, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest

from modan_nb import experiments as E
from modan_nb.synth import make_demo_data

COLS = ['method', 'task', 'protocol', 'fraction', 'fold', 'repeat', 'auc']

@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth')
    return make_demo_data(root, n_per_class=4, mrnet=(20, 8), busi=48, ddti=20, seed=0)

def tiny_config(synth, name, **kw):
    d = dict(name=name, methods=['ModAn-MulSupCon', 'Scratch'], protocols=['sklearn', 'linear'],
             tasks={'breast': E.synthetic_tasks(synth)['breast']}, pretrain=str(synth['synthrin']),
             n_folds=2, repeats=2, pretrain_epochs=1, pretrain_bs=32, pretrain_max_images=None, pretrain_size=16,
             task_size=16, ft_epochs=1, umap=False)
    d.update(kw)
    return E.demo_config(**d)

def _aucs(res): return res['aucs'][COLS].sort_values(COLS[:-1]).reset_index(drop=True)

def test_interrupted_run_resumes_without_redoing(synth, tmp_path, monkeypatch):
    monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    quiet = dict(progress=False, log=lambda *a: None)
    full = E.run_experiment(tiny_config(synth, 'full'), **quiet)
    calls = {'n': 0}
    orig = E._GridProgress.__call__
    def stop_after_3(self, row):
        calls['n'] += 1
        if calls['n'] > 3: raise KeyboardInterrupt
        orig(self, row)
    monkeypatch.setattr(E._GridProgress, '__call__', stop_after_3)
    with pytest.raises(KeyboardInterrupt): E.run_experiment(tiny_config(synth, 'cut'), **quiet)
    done = pd.read_csv(tmp_path/'runs'/'cut'/'transfer'/'breast'/'auc.csv')
    assert len(done) == 4   # the unit that raised in the callback was already saved
    monkeypatch.setattr(E._GridProgress, '__call__', orig)
    seen = []
    monkeypatch.setattr(E._GridProgress, '__call__', lambda self, row: seen.append(row))
    resumed = E.run_experiment(tiny_config(synth, 'cut'), **quiet)
    assert len(seen) == len(full['aucs']) - 4          # only the missing units ran
    pd.testing.assert_frame_equal(_aucs(resumed), _aucs(full))

def test_modan_run_cli(synth, tmp_path):
    cfg = tiny_config(synth, 'cli', methods=['Scratch', 'ModAn-MulSupCon', 'ImageNet'], protocols=['sklearn'])
    cfg.to_yaml(tmp_path/'tiny.yaml')
    env = {**os.environ, 'MODAN_DATA': str(tmp_path/'data'), 'TORCH_HOME': str(tmp_path/'torch')}
    exe = Path(sys.executable).parent/'modan_run'      # the console script `pip install` made
    assert exe.exists(), f"{exe} is missing: install the project with pip install -e ."
    out = subprocess.run([str(exe), str(tmp_path/'tiny.yaml')],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'report:' in out.stdout and 'wall time:' in out.stdout
    assert 'ImageNet' in out.stdout and 'not run' in out.stdout     # reported, not dropped
    report = (tmp_path/'data'/'runs'/'cli'/'report.md').read_text()
    assert 'ImageNet' in report and 'Configuration' in report and 'torch' in report

def test_bad_config_names_the_setting(tmp_path):
    (tmp_path/'bad.yaml').write_text('name: x\nrepeat: 3\n')
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['repeat'\]"): E.ExperimentConfig.from_yaml(tmp_path/'bad.yaml')
