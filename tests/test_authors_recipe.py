"""Issue 18: the authors' recipe as their published runs ran it (configs/authors.yaml), per-method transfer settings, encoders
drawn anew per unit, per-image ACL scoring, and a pretraining resume that refuses other data."""
import sys, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
sys.path.insert(0, str(Path(__file__).parent))
from _transfer_helpers import TinyEncoder, toy_task as _toy_task
from _pretrain_helpers import tiny_table
from modan_nb.config import ExperimentConfig, pretrain_recipe, transfer_recipe, demo_scale
from modan_nb.runner import transfer_encoders
from modan_nb.transfer import run_transfer, TransferRecipe, TransferTask, Reinit, UNIT_COLS
from modan_nb.learner import authors_recipe, modan_pretrain

torch.set_num_threads(1)
ROOT = Path(__file__).parents[1]

def authors(): return ExperimentConfig.from_yaml(ROOT/'configs/authors.yaml', check_paths=False)

def test_authors_yaml_is_what_the_published_runs_ran():
    c = authors()
    assert pretrain_recipe('SimCLR', c).lr == 0.05                       # train_simCLR.py at 8c51a26; the _lr005 runs
    assert c.tasks['breast'] == dict(reader='radimagenet', root='~/data/radimagenet_downstream', task='breast', duplicates='keep')
    assert c.tasks['acl']['agg'] == 'none'                               # per slice
    r = transfer_recipe(c)
    assert r.for_method('SimCLR').head == 'two_logit' and r.for_method('ModAn-MulSupCon').head == 'features_as_logits'
    assert c.transfer.reinit is True and r.probe_epochs == 10
    m = pretrain_recipe('ModAn-MulSupCon', c)
    assert (m.precision, m.drop_last) == ('fp16', False)
    assert authors_recipe('simclr').lr == 0.05 and authors_recipe('modan').precision == 'fp16'

def test_authors_demo_config_keeps_the_new_keys():
    d = demo_scale(authors())
    assert d.transfer.reinit and d.transfer.overrides == {'SimCLR': {'head': 'two_logit'}} and d.tasks == {}

def test_acl_tables_need_an_explicit_unit(tmp_path):
    y = (ROOT/'configs/authors.yaml').read_text().replace(', agg: none}', '}')
    (tmp_path/'a.yaml').write_text(y)
    with pytest.raises(ValueError, match=r"a.yaml.*agg: none \(per slice"): ExperimentConfig.from_yaml(tmp_path/'a.yaml', check_paths=False)

def test_transfer_overrides_are_checked(tmp_path):
    for bad, msg in (({'SimCLR': {'size': 32}}, 'cannot differ between methods'), ({'Nobody': {'head': 'linear'}}, 'not a method'),
                     ({'SimCLR': {'head': 'softmax9'}}, 'head')):
        with pytest.raises(ValueError, match=msg): ExperimentConfig(transfer=dict(overrides=bad)).validate(check_paths=False)

def toy_task(n=40, size=16): return _toy_task(n, size, n_folds=2)

def encoders():
    torch.manual_seed(0); a = TinyEncoder()
    torch.manual_seed(1); b = TinyEncoder()
    return dict(A=a, B=b)

KW = dict(n_folds=2, repeats=1, size=16, epochs=1, bs=8, lr=1e-2, device='cpu', protocols=['finetune'], resume=False)

def _scores(s, m): return s[s.method == m].sort_values(UNIT_COLS + ['case']).score.to_numpy()

def test_per_method_head():
    df, x = toy_task()
    _, plain = run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), **KW)
    _, two = run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), head='two_logit', **KW)
    _, mixed = run_transfer(encoders(), TransferTask(df, 'toy', inputs=x), per_method={'B': {'head': 'two_logit'}}, **KW)
    np.testing.assert_allclose(_scores(mixed, 'A'), _scores(plain, 'A'))
    np.testing.assert_allclose(_scores(mixed, 'B'), _scores(two, 'B'))
    assert not np.allclose(_scores(mixed, 'B'), _scores(plain, 'B'))

def test_reinit_draws_an_encoder_per_unit():
    df, x = toy_task()
    drawn = []
    def make():
        e = TinyEncoder(); drawn.append(float(e.body[0].weight.detach().sum())); return e
    kw = dict(KW, repeats=2)
    a1, s1 = run_transfer(dict(R=Reinit(make, 'R')), TransferTask(df, 'toy', inputs=x), **kw)
    n_units = 2*2   # folds x repeats
    assert len(set(drawn[-n_units:])) == n_units                  # every fold and repeat its own encoder
    a2, s2 = run_transfer(dict(R=Reinit(make, 'R')), TransferTask(df, 'toy', inputs=x), **kw)
    np.testing.assert_allclose(a1.auc, a2.auc)                     # drawn from the unit's seed: reproducible
    _, fixed = run_transfer(dict(R=make()), TransferTask(df, 'toy', inputs=x), **kw)
    assert not np.allclose(_scores(s1, 'R'), _scores(fixed, 'R'))

def test_transfer_encoders_wraps_scratch_and_imagenet():
    c = ExperimentConfig(transfer=dict(reinit=True), pretrain=dict(stem='torchvision')).validate(check_paths=False)
    e = transfer_encoders(c, {'Scratch': 'a.pth', 'ModAn-MulSupCon': 'b.pth'})
    assert isinstance(e['Scratch'], Reinit) and e['ModAn-MulSupCon'] == 'b.pth'
    assert not isinstance(transfer_encoders(c.__class__(pretrain=dict(stem='torchvision')).validate(check_paths=False), {'Scratch': 'a.pth'})['Scratch'], Reinit)

def test_agg_none_is_per_image():
    df, x = toy_task()
    a0, _ = run_transfer(encoders(), TransferTask(df, 'toy', inputs=x, agg='none'), **KW)
    a1, _ = run_transfer(encoders(), TransferTask(df, 'toy', inputs=x, agg=None), **KW)
    np.testing.assert_allclose(a0.auc, a1.auc)

def test_drop_last_false_keeps_the_last_batch(tmp_path):
    from modan_nb.data import pretrain_dls
    csv = tiny_table(tmp_path, n=20, px=8)
    assert len(pretrain_dls(csv, size=8, bs=8, device='cpu').train) == 2
    assert len(pretrain_dls(csv, size=8, bs=8, device='cpu', drop_last=False).train) == 3

def test_resume_on_other_data_is_refused(tmp_path):
    a, b = tiny_table(tmp_path/'a', n=16, px=8), tiny_table(tmp_path/'b', n=16, px=8, seed=1)
    pd.read_csv(b).iloc[:12].to_csv(b, index=False)
    kw = dict(bs=8, size=8, seed=0, progress=False, path=tmp_path/'run')
    modan_pretrain(a, epochs=1, **kw)
    with pytest.raises(ValueError, match=r"pretrained on other data: the table with SHA-256 [0-9a-f]{64} \(16 images\) there, [0-9a-f]{64} \(12 images\) now"):
        modan_pretrain(b, epochs=1, resume=True, **kw)
    modan_pretrain(a, epochs=1, resume=True, **kw)   # the same table resumes (the finished run: nothing to train)
