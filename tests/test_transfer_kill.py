"run_transfer killed at random instants and in the middle of its writes, resumed each time: the final tables equal an uninterrupted run's."
import os, random, signal, time
import numpy as np, pandas as pd, pytest, torch
import torch.nn as nn
from modan_nb import stores
from modan_nb.transfer import run_transfer, UNIT_COLS, TransferTask

torch.set_num_threads(1)

from _transfer_helpers import TinyEncoder, toy_task as _toy_task

def encoders():
    torch.manual_seed(0); return {'A': TinyEncoder(4)}

def toy_task(n=24, size=8): return _toy_task(n, size)

DF, X = toy_task()
KW = dict(protocols=('finetune', 'linear'), n_folds=3, repeats=3, size=8, epochs=2, bs=8, lr=1e-2, device='cpu')
N_UNITS = 2*3*3

def run(out_dir): return run_transfer(encoders(), TransferTask(DF, 'toy', inputs=X), out_dir=out_dir, **KW)

def fork_run(out_dir, kill_at=None, cut_seed=None):
    "run_transfer in a child process (forked: no import cost); `kill_at`: the child dies inside its n-th append, cut where `cut_seed` draws."
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            stores._N_WRITES[0] = 0
            if kill_at is not None: os.environ[stores._KILL_ENV] = str(kill_at)
            if cut_seed is not None: os.environ[stores._KILL_CUT_ENV] = str(cut_seed)   # anywhere, or at a comma + newline
            run(out_dir)
        except BaseException as e:
            print('child failed:', repr(e)); code = 3
        finally: os._exit(code)
    return pid

def wait(pid):
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)

def _sorted(df, cols): return df[cols].sort_values(UNIT_COLS + [c for c in ('case',) if c in cols]).reset_index(drop=True)

def check_equal(auc, scores, ref_auc, ref_scores):
    acols = UNIT_COLS + ['auc', 'n_train', 'n_valid', 'n_test', 'best_epoch', 'C']
    pd.testing.assert_frame_equal(_sorted(auc, acols), _sorted(ref_auc, acols), check_exact=False, rtol=1e-12, atol=1e-12)
    scols = UNIT_COLS + ['case', 'group', 'label', 'score']
    pd.testing.assert_frame_equal(_sorted(scores, scols), _sorted(ref_scores, scols), check_exact=False, rtol=1e-12, atol=1e-12, check_dtype=False)

def test_killed_and_resumed_equals_uninterrupted(tmp_path):
    ref_auc, ref_scores = run(tmp_path/'ref')
    assert len(ref_auc) == N_UNITS
    t = time.time(); assert wait(fork_run(tmp_path/'warm')) == 0; t_run = time.time() - t   # a whole run, warm
    rng, injected, timed, cut_rows, rounds = random.Random(0), 0, 0, 0, 0
    while injected + timed < 24:   # rounds: a fresh folder each, killed and resumed until every unit is done
        out, rounds = tmp_path/f'killed{rounds}', rounds + 1
        while True:
            n_done = len(stores._read_rows(out/'auc.csv'))   # never a ParserError, never a cut row
            if n_done == N_UNITS: break
            if (injected + timed) % 2 == 0:   # die inside an append: a cut row is left on disk, anywhere in a row, `...,0.5\n` too
                code = wait(fork_run(out, kill_at=rng.choice([1, 2, 3]), cut_seed=rng.randrange(2**30)))
                assert code in (137, 0), code
                if code == 137:
                    injected += 1
                    cut_rows += any(stores._complete_text(f)[1] for f in (out/'auc.csv', out/'scores.csv'))
            else:   # SIGKILL at a random instant of what is left to do
                pid = fork_run(out)
                time.sleep(rng.uniform(0, t_run*(N_UNITS - n_done)/N_UNITS))
                os.kill(pid, signal.SIGKILL)
                code = wait(pid)
                assert code in (-signal.SIGKILL, 0), code
                timed += code != 0
        check_equal(*run(out), ref_auc, ref_scores)   # the final resume has nothing to do and reads the same tables
    assert injected >= 10 and cut_rows >= 10 and timed >= 10, (injected, timed, cut_rows)
    print(f"{rounds} round(s), {injected} kills inside a write ({cut_rows} left a cut row), {timed} at random instants")

def test_cut_auc_row_is_not_kept(tmp_path):
    "The issue's case: an AUC row cut mid-number (0.6875 -> 0.6) is dropped and its unit re-run, and nothing is appended onto it."
    auc, _ = run(tmp_path)
    header, *rows = (tmp_path/'auc.csv').read_text().splitlines()
    k = next(i for i, r in enumerate(rows) if len(r.split(',')[6]) > 3)   # a row whose AUC has 2+ decimals
    f = rows[k].split(',')
    cut = ','.join(f[:6] + [f[6][:3]])                                       # e.g. 0.75 cut to 0.7, at the end of the file
    (tmp_path/'auc.csv').write_text('\n'.join([header] + rows[:k] + rows[k+1:]) + '\n' + cut)
    redone = []
    auc2, _ = run_transfer(encoders(), TransferTask(DF, 'toy', inputs=X), out_dir=tmp_path, callback=redone.append, **KW)
    assert len(redone) == 1
    pd.testing.assert_frame_equal(_sorted(auc2, UNIT_COLS + ['auc']), _sorted(auc, UNIT_COLS + ['auc']))
    assert (tmp_path/'auc.csv').read_text().count('\n') == N_UNITS + 1
