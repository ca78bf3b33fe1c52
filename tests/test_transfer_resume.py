"run_transfer resumes an interrupted run: finished units are not redone and the final tables equal an uninterrupted run's."
import re
import numpy as np, pandas as pd, pytest, torch
import torch.nn as nn
from modan_nb import stores
from modan_nb.transfer import run_transfer, UNIT_COLS, TransferRecipe, TransferTask

torch.set_num_threads(1)

from _transfer_helpers import TinyEncoder, toy_task as _toy_task

def encoders():
    torch.manual_seed(0); a = TinyEncoder()
    torch.manual_seed(1); b = TinyEncoder()
    return dict(A=a, B=b)

def toy_task(n=48, size=16): return _toy_task(n, size, n_folds=3)

class Stop(Exception): pass

def key(r): return tuple(r[c] for c in UNIT_COLS)

def _sorted(df, extra): return df.sort_values(UNIT_COLS + extra).reset_index(drop=True)

def test_resume(tmp_path):
    df, x = toy_task()
    kw = dict(n_folds=3, repeats=2, size=16, epochs=2, bs=8, lr=1e-2, device='cpu')
    ref_auc, ref_scores = run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), **kw)
    n_units = 2*3*3*2
    assert len(ref_auc) == n_units

    first = []
    def stop_after_7(row):
        first.append(key(row))
        if len(first) == 7: raise Stop
    with pytest.raises(Stop): run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), out_dir=tmp_path, callback=stop_after_7, **kw)
    assert len(pd.read_csv(tmp_path/'auc.csv')) == 7
    # a unit killed half-way: its scores are on disk, its AUC row is not
    sc = pd.read_csv(tmp_path/'scores.csv').drop(columns='crc')
    stores._append_text(tmp_path/'scores.csv', stores._csv_text(sc.iloc[:3].assign(repeat=99), header=False))

    second = []
    auc, scores = run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), out_dir=tmp_path, callback=lambda r: second.append(key(r)), **kw)
    assert len(second) == n_units - 7 and not set(first) & set(second)    # nothing finished was redone
    assert (scores['repeat'] != 99).all()                                # the half-written unit's scores were dropped
    cols = UNIT_COLS + ['auc', 'n_train', 'n_valid', 'n_test', 'best_epoch', 'C']
    pd.testing.assert_frame_equal(_sorted(auc[cols], []), _sorted(ref_auc[cols], []), check_exact=False, rtol=1e-9, atol=1e-12)
    scols = UNIT_COLS + ['case', 'group', 'label', 'score']
    pd.testing.assert_frame_equal(_sorted(scores[scols], ['case']), _sorted(ref_scores[scols], ['case']),
                                  check_exact=False, rtol=1e-9, atol=1e-12, check_dtype=False)

    # a third run has nothing left to do; more repeats later only run the new units
    third = []
    run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), out_dir=tmp_path, callback=lambda r: third.append(r), **kw)
    assert third == []
    more = []
    auc3, _ = run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), out_dir=tmp_path, callback=lambda r: more.append(r), **{**kw, 'repeats': 3})
    assert len(more) == 2*3*3 and len(auc3) == n_units + 2*3*3

def test_changed_settings_refused(tmp_path):
    df, x = toy_task()
    kw = dict(n_folds=3, repeats=1, size=16, epochs=1, bs=8, lr=1e-2, device='cpu', protocols=('sklearn',))
    run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), out_dir=tmp_path, **kw)
    with pytest.raises(ValueError, match=r'other settings \(lr: 0.01 -> 0.001\)'):
        run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), out_dir=tmp_path, **{**kw, 'lr': 1e-3})
    for change, named in [(dict(seed=1), 'seed: 0 -> 1'), (dict(size=32), 'size: 16 -> 32'), (dict(agg='mean'), "agg: None -> 'mean'"),
                          (dict(recipe=TransferRecipe.authors()), "select: 'best' -> 'last'"), (dict(probe_lr=1e-3), 'probe_lr: None -> 0.001'),
                          (dict(df=df.assign(label=1 - df.label)), 'table:')]:
        args = {**kw, **change}; task = TransferTask(args.pop('df', df), 'toy', agg=args.pop('agg', None), inputs=x)
        with pytest.raises(ValueError, match=re.escape(named)): run_transfer(encoders(), task, out_dir=tmp_path, **args)
    other = encoders(); torch.manual_seed(5); other['A'] = TinyEncoder()    # other weights under the same name
    with pytest.raises(ValueError, match="encoder 'A': other weights"): run_transfer(other, TransferTask(df, 'toy', inputs=x), out_dir=tmp_path, **kw)
    auc, _ = run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), out_dir=tmp_path, resume=False, **{**kw, 'lr': 1e-3})
    assert len(auc) == 2*3

def test_valid_frac_zero_is_no_carve_out(tmp_path):
    "valid_frac=0: every training patient trains and the last epoch is tested (it was a division by zero)."
    df, x = toy_task()
    kw = dict(n_folds=3, repeats=1, size=16, epochs=3, bs=8, lr=1e-2, device='cpu', protocols=('finetune', 'linear'))
    auc, _ = run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), valid_frac=0, **kw)
    assert (auc.n_valid == 0).all() and (auc.best_epoch == 3).all() and (auc.n_train + auc.n_test == len(df)).all()

def test_tasks_share_an_out_dir(tmp_path):
    "Two tasks in one folder: each call returns its own units; resume=False forgets only its own task."
    df, x = toy_task()
    kw = dict(n_folds=3, repeats=1, size=16, epochs=1, bs=8, lr=1e-2, device='cpu', protocols=('sklearn',), out_dir=tmp_path)
    a1, s1 = run_transfer(encoders(), TransferTask(df, 't1', inputs=x), **kw)
    a2, s2 = run_transfer(encoders(), TransferTask(df, 't2', inputs=x), **kw)
    assert set(a1.task) == {'t1'} and set(a2.task) == {'t2'} and len(a1) == len(a2) == 2*3
    assert set(s2.task) == {'t2'} and len(s2) == 2*len(df)
    only_a, _ = run_transfer({'A': encoders()['A']}, TransferTask(df, 't1', inputs=x), **kw)     # a subset of what is on disk
    assert set(only_a.method) == {'A'} and len(only_a) == 3
    run_transfer(encoders(), TransferTask(df, 't1', inputs=x), **{**kw, 'resume': False})
    assert len(pd.read_csv(tmp_path/'auc.csv')) == 2*2*3                # t2 kept, t1 redone once

def test_given_folds_with_the_readers_empty_split(tmp_path):
    "A reader's table (BUS-BRA: publisher folds, `split` empty) runs on its own folds; a half-filled `split` is refused by name."
    df, x = toy_task()
    kw = dict(n_folds=3, repeats=1, size=16, device='cpu', protocols=('sklearn',))
    auc, scores = run_transfer(encoders(), TransferTask(df.assign(split=''), 'toy', inputs=x), out_dir=tmp_path, **kw)   # its config is written (plain JSON)
    ref, _ = run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), **kw)
    assert sorted(auc.fold.unique()) == [0, 1, 2] and np.allclose(auc.sort_values(UNIT_COLS).auc.values, ref.sort_values(UNIT_COLS).auc.values)
    half = df.assign(split=['train']*(len(df)-4) + ['']*4)
    with pytest.raises(ValueError, match=r"must be train/val/test; got \[''\]"): run_transfer(encoders(), TransferTask(half, 'toy', inputs=x), **kw)
