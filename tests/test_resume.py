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
    hf, hr = pd.read_csv(tmp_path/'full'/'history.csv'), pd.read_csv(tmp_path/'cut'/'history.csv')
    assert (hf.train_loss - hr.train_loss).abs().max() < 1e-5 # the logged (smoothed) loss continues where it was
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

def _weights(p):
    from modan_nb.models import load_encoder
    return load_encoder(p)[0].state_dict()

def test_finished_resume_rewrites_encoder(tmp_path):
    "A finished run resumed finds encoder.pth deleted or truncated and writes it again (the same weights)."
    torch.set_num_threads(1)
    csv = tiny_table(tmp_path, n=16, px=24)
    kw = dict(epochs=1, bs=8, size=16, seed=2, path=tmp_path/'run')
    first = modan_pretrain(csv, **kw)
    enc = tmp_path/'run'/'encoder.pth'; ref = _weights(enc)
    enc.unlink()
    again = modan_pretrain(csv, resume=True, **kw)
    assert enc.is_file() and again.n_steps == first.n_steps
    assert len(again.recorder.losses) == 2 # the finished run's record is back without a fit
    for k, v in _weights(enc).items(): assert torch.equal(v, ref[k]), k
    b = enc.read_bytes(); enc.write_bytes(b[:len(b)//3])
    modan_pretrain(csv, resume=True, **kw)
    for k, v in _weights(enc).items(): assert torch.equal(v, ref[k]), k

def test_truncated_checkpoint_names_the_file(tmp_path):
    torch.set_num_threads(1)
    csv = tiny_table(tmp_path, n=16, px=24)
    kw = dict(epochs=2, bs=8, size=16, path=tmp_path/'run')
    modan_pretrain(csv, cbs=[StopAfter(1)], **kw)
    ck = tmp_path/'run'/'checkpoint.pth'; b = ck.read_bytes()
    for cut in (b[:len(b)//2], b[:10], b''):
        ck.write_bytes(cut)
        try: modan_pretrain(csv, resume=True, **kw)
        except ValueError as e:
            msg = str(e)
            assert f'{ck} is truncated or corrupt' in msg and f'delete {ck} (only this file)' in msg, msg
            assert 'weights-only' not in msg and '--fresh' not in msg, msg
        else: raise AssertionError('a truncated checkpoint should fail')

def test_resume_names_every_difference(tmp_path):
    torch.set_num_threads(1)
    csv = tiny_table(tmp_path, n=16, px=24)
    kw = dict(epochs=2, bs=8, size=16, path=tmp_path/'run')
    modan_pretrain(csv, cbs=[StopAfter(1)], seed=0, **kw)
    for change, says in [(dict(seed=1), 'seed=0 there, seed=1 now'), (dict(temperature=0.1), 'temperature=0.07 there, temperature=0.1 now'),
                         (dict(stem='torchvision'), "stem='paper' there, stem='torchvision' now"), (dict(recipe='authors'), "recipe='paper' there"),
                         (dict(head='fc1000'), "head='mlp' there, head='fc1000' now"), (dict(crop_scale=(0.08, 1.)), 'crop_scale=')]:
        args = dict(dict(seed=0), **change)
        try: modan_pretrain(csv, resume=True, **kw, **args)
        except ValueError as e: assert says in str(e), (change, str(e))
        else: raise AssertionError(f'resuming with {change} should fail')
