"""Smoke tests of bench/real_evidence.py's code paths on a tiny fake shared-data folder (seconds, no real data needed)."""
import importlib.util, json, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='module')
def R():
    spec = importlib.util.spec_from_file_location('real_evidence', ROOT/'bench'/'real_evidence.py')
    mod = importlib.util.module_from_spec(spec); sys.modules['real_evidence'] = mod; spec.loader.exec_module(mod)
    return mod

def _png(path:Path, level:int, rng, side:int=20):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.clip(level + rng.normal(0, 15) + rng.normal(0, 25, (side, side)), 0, 255).astype(np.uint8)   # per-image offset: classes overlap
    Image.fromarray(a).save(path)

PAIRS = [('CT', 'brain', 60), ('MR', 'brain', 120), ('US', 'thyroid', 190)]

@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    "realrin.csv (3 pairs x 6 patients x 2 images), a BUSI-like folder and a DDTI-like folder."
    root = tmp_path_factory.mktemp('shared'); rng = np.random.default_rng(0); rows = []
    for m, a, lvl in PAIRS:
        for p in range(6):
            for k in range(2):
                rel = f'pool/{m}_{a}/{p}_{k}.png'; _png(root/rel, lvl, rng)
                rows.append(dict(path=rel, modality=m, anatomy=a, source='fake', group=f'{m}{a}{p}', label=f'{m} {a} {"x" if p % 2 else "y"}'))
    pd.DataFrame(rows).to_csv(root/'realrin.csv', index=False)
    for cls, lvl in (('benign', 110), ('malignant', 125)):   # overlapping classes: AUC below 1, a finite DeLong interval
        for i in range(10): _png(root/'busi'/cls/f'{cls} ({i}).png', lvl, rng, side=20)
    lines = []
    for case in range(8):
        for k in range(2):
            name = f'{case}_{k+1}'; _png(root/'ddti'/'cropped'/f'{name}.png', 80 + 80*(case % 2), rng)
            lines.append(f"{name},{'4a' if case % 2 else '3'},{case % 2}")
    (root/'ddti'/'diagnosis.csv').write_text('\n'.join(lines) + '\n')
    return root

def test_split_realrin_holds_out_whole_patients(R, shared):
    df = pd.read_csv(shared/'realrin.csv', dtype={'group': str})
    s = R.split_realrin(df, per_pair=5, holdout_per_pair=4, seed=0)
    held, pre = s[s.split == 'holdout'], s[s.split == 'pretrain']
    assert not set(held.group) & set(pre.group)
    assert (held.groupby('modality').size() >= 4).all() and (pre.groupby(['modality', 'anatomy']).size() == 5).all()
    s2 = R.split_realrin(df.assign(group=np.nan), per_pair=5, holdout_per_pair=4, seed=0)   # no patient ids: one image each
    assert (s2[s2.split == 'holdout'].groupby(['modality', 'anatomy']).size() == 4).all()
    with pytest.raises(KeyError, match="no column"): R.split_realrin(df.drop(columns='group'), 5, 4)

def test_trunk_and_top_make_the_encoder(R):
    from modan_nb.models import create_encoder
    enc = create_encoder('resnet18', None, stem='torchvision').eval()
    x = torch.randint(0, 255, (3, 1, 32, 32), dtype=torch.uint8)
    with torch.no_grad(): full, split = enc(x), R.Top(enc).eval()(R.trunk_maps(enc, x))
    torch.testing.assert_close(full, split, rtol=1e-4, atol=1e-5)

def test_external_table_folds_are_data_sets(R, shared):
    from modan_nb.data import read_busi
    b = read_busi(shared/'busi', include_normal=False)
    e = R.external_table({'busi': b, 'busbra': b})
    assert list(e.fold.value_counts().sort_index()) == [len(b), len(b)]
    assert e.item.is_unique and not set(e[e.fold == 0].group) & set(e[e.fold == 1].group)

def test_stages_put_cheap_work_first(R):
    a = R.parse(['--repeats', '3'])
    st = R.stages(a, {'busi': 0, 'busbra': 0, 'external': 0})
    assert st[0][:2] == ('sklearn', ['busi', 'busbra']) and st[1][:2] == ('sklearn', ['external'])
    assert [s[0] for s in st[:6]] == ['sklearn']*3 + ['finetune']*3 and st[2][1:3] == (['busbra'], (0.1, 0.25, 1.0))   # busbra: the scarcity task
    assert [s[3] for s in st] == sorted(s[3] for s in st)   # repeats grow stage by stage

def test_benchmark_end_to_end_and_resume(R, shared, tmp_path):
    run, rep = tmp_path/'run', tmp_path/'out.md'
    args = ['--shared', str(shared), '--run', str(run), '--report', str(rep), '--size', '16', '--epochs', '1', '--bs', '8',
            '--per-pair', '8', '--holdout-per-pair', '4', '--folds', '2', '--repeats', '1', '--ft-epochs', '1',
            '--tasks', 'busi,ddti', '--scarcity-task', 'busi', '--max-cases', '0', '--no-external']
    R.main(args)
    au = pd.read_csv(run/'transfer'/'auc.csv')
    assert set(au.method) == set(R.METHODS) and set(au.protocol) == {'sklearn', 'finetune'}
    assert set(au[au.task == 'busi'].fraction.round(2)) == {0.1, 0.25, 1.0} and set(au[au.task == 'ddti'].fraction) == {1.0}
    emb = pd.read_csv(run/'embedding.csv')
    assert {'knn_modality', 'knn_anatomy', 'knn_pair', 'spearman', 'p'} <= set(emb.columns) and len(emb) == len(R.METHODS)
    text = rep.read_text()
    for s in ('## sklearn probe', '## fine-tuning', '## Label scarcity', 'Does the embedding follow the metadata', 'views per second'):
        assert s in text, s
    assert (tmp_path/'real_evidence_loss.png').is_file() and (tmp_path/'real_evidence_scarcity.png').is_file()   # beside the report
    # a hand-written reading survives a re-run, and a re-run trains nothing again
    rep.write_text(text.replace('_(to be written from the numbers below)_', 'MY READING'))
    n = len(au)
    R.main(args)
    assert len(pd.read_csv(run/'transfer'/'auc.csv')) == n and 'MY READING' in rep.read_text()
    with pytest.raises(SystemExit, match='other settings'): R.main(args[:-1] + ['--no-external', '--epochs', '2'])

def test_external_results_per_direction(R, shared, tmp_path):
    from modan_nb.data import read_busi
    from modan_nb.models import create_encoder, save_encoder
    b = read_busi(shared/'busi', include_normal=False)
    encs = {m: save_encoder(tmp_path/f'{i}.pth', create_encoder('resnet18', None, stem='torchvision')) for i, m in enumerate(('ModAn-MulSupCon', 'Scratch'))}
    a = R.parse(['--size', '16', '--ft-epochs', '1'])
    out = tmp_path/'transfer'
    # one set standing in for both directions: every image is in both halves by construction, so duplicates are kept on purpose
    R.evaluate(encs, R.external_table({'busi': b, 'busbra': b}), 'external', out, a, 'sklearn', 2, duplicates='keep')
    au, sc = R.complete_results(out, list(encs))
    ext = R.external_results(sc)
    assert set(ext.direction) == {'BUS-BRA -> BUSI', 'BUSI -> BUS-BRA'} and len(ext) == 4
    assert ext.auc.between(0, 1).all() and (ext.auc_lo <= ext.auc).all() and ext[ext.method == 'Scratch'].p_adj.notna().all()

def test_time_spent_counts_every_finished_epoch_once(R, tmp_path):
    # a call killed mid-pretraining never records its 'pretraining' time: the epochs' own times (history.csv) count instead
    h = tmp_path/'pretrain'/R.method_slug('ModAn-MulSupCon'); h.mkdir(parents=True)
    (h/'history.csv').write_text('epoch,train_loss,valid_loss,time\n0,2.7,00:30\n1,2.5,01:30\n')
    spent = R.time_spent(tmp_path, {'pretraining': 5.0, 'stage 1: sklearn': 120.0})
    assert spent == {'pretraining ModAn-MulSupCon': 2.0, 'stage 1: sklearn': 2.0}
    assert R.pretrain_speed(tmp_path, n_images=450, bs=32) == {'ModAn-MulSupCon': round(2*448*2/120, 1)}
