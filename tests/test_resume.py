"An interrupted pretraining run, resumed, ends where an uninterrupted one does (steps, log, weights)."
import sys
from pathlib import Path
import pandas as pd, torch
from fastai.callback.core import Callback, CancelFitException
sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_helpers import tiny_table
from modan_nb.learner import modan_pretrain, simclr_pretrain

class StopAfter(Callback):
    "Interrupt the fit after `n` epochs, as a crash or a lost job would."
    order = 70
    def __init__(self, n): self.n = n
    def after_epoch(self):
        if self.epoch + 1 == self.n: raise CancelFitException()

def _same_weights(a, b):
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), atol=1e-5), k

def test_resume_matches_uninterrupted(tmp_path):
    torch.set_num_threads(1)
    csv = tiny_table(tmp_path, n=16, px=24)
    kw = dict(epochs=3, bs=8, size=16, seed=3)
    full = modan_pretrain(csv, path=tmp_path/'full', **kw)
    cut = modan_pretrain(csv, path=tmp_path/'cut', cbs=[StopAfter(1)], **kw)
    assert cut.n_steps == 2 and len(pd.read_csv(tmp_path/'cut'/'history.csv')) == 1
    res = modan_pretrain(csv, path=tmp_path/'cut', resume=True, **kw)
    assert full.n_steps == res.n_steps == 6
    assert len(pd.read_csv(tmp_path/'cut'/'history.csv')) == 3
    assert pd.read_csv(tmp_path/'cut'/'history.csv').epoch.tolist() == [0, 1, 2]
    assert len(res.recorder.losses) == len(full.recorder.losses) == 6
    _same_weights(full.model, res.model)
    # the optimiser's momentum buffers came back too
    sf, sr = full.opt.opt.state_dict()['state'], res.opt.opt.state_dict()['state']
    assert sf.keys() == sr.keys()
    for k in sf: assert torch.allclose(sf[k]['momentum_buffer'], sr[k]['momentum_buffer'], atol=1e-5)
    # resuming a finished run does nothing more
    again = modan_pretrain(csv, path=tmp_path/'cut', resume=True, **kw)
    assert again.n_steps == 6 and len(pd.read_csv(tmp_path/'cut'/'history.csv')) == 3

def test_resume_refuses_other_settings(tmp_path):
    torch.set_num_threads(1)
    csv = tiny_table(tmp_path, n=16, px=24)
    simclr_pretrain(csv, epochs=1, bs=8, size=16, path=tmp_path/'run')
    try: modan_pretrain(csv, epochs=1, bs=8, size=16, path=tmp_path/'run', resume=True)
    except ValueError as e: assert "method='simclr'" in str(e)
    else: raise AssertionError('resuming with another method should fail')
