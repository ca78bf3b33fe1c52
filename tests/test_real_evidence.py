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
    from modan_nb.tasks import read_busi
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
    from modan_nb.tasks import read_busi
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

# ---------------------------------------------------------------- several pretraining seeds
def _seed_scores(rng, n:int, d_ref, d_other):
    "Labels and (S, n) scores of two methods whose separation per seed is d_ref[s], d_other[s] (binormal, one shared case effect)."
    y = (np.arange(n) % 3 == 0).astype(int)
    case = rng.normal(0, 1, n)   # the same patients in every seed
    ref = np.stack([d*y + case + rng.normal(0, 1, n) for d in d_ref])
    other = np.stack([d*y + case + rng.normal(0, 1, n) for d in d_other])
    return y, ref, other

def test_seed_bootstrap_finds_a_difference_of_every_seed_not_of_one(R):
    rng = np.random.default_rng(1)
    y, ref, other = _seed_scores(rng, 300, [0.6, 0.6, 0.6], [1.6, 1.5, 1.7])   # better in every seed
    r = R.seed_bootstrap(y, ref, other, n_boot=500, seed=0)
    assert r['p'] < 0.01 and r['diff_lo'] > 0 and (r['seed_diffs'] > 0).all() and r['n_seeds'] == 3
    y, ref, other = _seed_scores(rng, 300, [0.6, 0.6, 0.6], [2.5, 0.6, 0.6])   # much better in one seed only
    one = R.seed_bootstrap(y, ref, other, n_boot=500, seed=0)
    assert one['seed_diffs'][0] > 0.15 and one['p'] > 0.05 and one['diff_lo'] <= 0
    assert R.seed_bootstrap(y, ref, other, n_boot=500, seed=0, cases='per_seed')['p'] > 0.05
    # deterministic given its seed; another seed, other draws
    again = R.seed_bootstrap(y, ref, other, n_boot=500, seed=0)
    assert (again['p'], again['diff_lo'], again['diff_hi']) == (one['p'], one['diff_lo'], one['diff_hi'])
    assert R.seed_bootstrap(y, ref, other, n_boot=500, seed=1)['diff_lo'] != one['diff_lo']
    with pytest.raises(ValueError, match='shape'): R.seed_bootstrap(y, ref, other[:2])
    with pytest.raises(ValueError, match='cases'): R.seed_bootstrap(y, ref, other, cases='nested')

def test_seed_level_tests_on_score_tables(R):
    "Per-case score tables of 3 seeds (2 folds, 2 repeats): the method better in every seed is found, Holm within task and protocol, the verdicts follow."
    rng = np.random.default_rng(2)
    n, tabs = 240, {}
    y = (np.arange(n) % 3 == 0).astype(int); case = rng.normal(0, 1, n)
    for s in range(3):
        rows = []
        for m, d in (('ModAn-MulSupCon', 0.6), ('SupCon', 1.6), ('SimCLR', 2.5 if s == 0 else 0.6)):
            for rep in (1, 2):
                sc = d*y + case + rng.normal(0, 1, n)
                rows.append(pd.DataFrame(dict(method=m, task='busi', protocol='sklearn', fraction=1.0, fold=np.arange(n) % 2, repeat=rep,
                                              case=[f'c{i}' for i in range(n)], group=[f'p{i}' for i in range(n)], label=y, score=sc)))
        tabs[s] = pd.concat(rows, ignore_index=True)
    sl = R.seed_level_tests(tabs, n_boot=400, seed=0).set_index('method')
    assert set(sl.index) == {'SupCon', 'SimCLR'} and (sl.n_seeds == 3).all() and (sl.level == 'patient').all()
    assert sl.loc['SupCon', 'p_adj'] < 0.05 < sl.loc['SimCLR', 'p_adj'] and (sl.p_adj >= sl.p).all()
    dl = pd.DataFrame([dict(task='busi', protocol='sklearn', fraction=1.0, method=m, seed=s, diff=d, p_adj=p)
                       for s in range(3) for m, d, p in (('SupCon', 0.1, 0.001), ('SimCLR', 0.2 if s == 0 else -0.01, 0.001 if s == 0 else 0.8))])
    v = R.verdicts(sl.reset_index(), dl, first=0).set_index('method')
    assert v.loc['SupCon', 'verdict'] == 'every seed' and v.loc['SimCLR', 'verdict'] == R.LUCK and v.loc['SimCLR', 'first_significant']
    au = pd.DataFrame([dict(task='busi', protocol='sklearn', fraction=1.0, method=m, seed=s, auc=x)
                       for s in range(3) for m, x in (('ModAn-MulSupCon', 0.7), ('SupCon', 0.8), ('SimCLR', 0.9 if s == 0 else 0.69))])
    text = '\n'.join(R.seeds_reading(v.reset_index(), au, pd.DataFrame(), 0, 3))
    assert 'SupCon above ModAn-MulSupCon on BUSI, sklearn' in text.split('**Holds on average only**')[0]
    assert 'SimCLR above ModAn-MulSupCon on BUSI, sklearn' in text.split("**One run's luck**")[1]
    assert 'Of the 2 significant differences' in text and 'BUSI SupCon (0.800; the highest in 2 of 3 seeds; in seed 0 SimCLR)' in text
    tabs[2] = tabs[2][tabs[2].case != 'c0']   # a seed scored on other cases: an error, not a silent mismatch
    with pytest.raises(ValueError, match='different cases'): R.seed_level_tests(tabs, n_boot=50)

def test_part_lock_refuses_a_live_owner_and_takes_over_a_dead_one(R, tmp_path):
    import socket, subprocess
    with R.part_lock(tmp_path, 'x'):
        assert (tmp_path/'.lock_x').is_file()
    assert not (tmp_path/'.lock_x').exists()
    (tmp_path/'.lock_x').write_text(f'999999999 {socket.gethostname()}')   # a killed process's lock
    with R.part_lock(tmp_path, 'x'): pass
    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    try:
        (tmp_path/'.lock_x').write_text(f'{p.pid} {socket.gethostname()}')
        with pytest.raises(SystemExit, match='is running this part'):
            with R.part_lock(tmp_path, 'x'): pass
    finally: p.kill(); p.wait()
    assert R.worker_command(['--seeds', '0,1', '--fresh', '--jobs', '2'], 1, 'SimCLR')[2:] == ['--seeds', '0,1', '--jobs', '2', '--worker-seed', '1', '--worker-method', 'SimCLR']
    with pytest.raises(SystemExit, match='distinct'): R.parse_seeds('0,0')

def test_seeds_layout_resume_and_report(R, shared, tmp_path, monkeypatch):
    "A single-seed run becomes seed 0; a second seed in seed_1, killed mid-pretraining and resumed; the seeds' report keeps the single-seed one."
    import socket
    run, rep = tmp_path/'run', tmp_path/'out.md'
    base = ['--shared', str(shared), '--run', str(run), '--report', str(rep), '--size', '16', '--epochs', '1', '--bs', '8',
            '--per-pair', '8', '--holdout-per-pair', '4', '--folds', '2', '--repeats', '1', '--ft-epochs', '1',
            '--tasks', 'ddti', '--scarcity-task', 'busi', '--max-cases', '0', '--no-external', '--n-boot', '100']
    R.main(base)   # the layout before --seeds: it is read as seed 0
    rep.write_text(rep.read_text().replace('_(to be written from the numbers below)_', 'MY SEED-0 READING'))
    enc0 = {f.name: f.stat().st_mtime_ns for f in (run/'encoders').glob('*.pth')}
    real, n = R._build_encoder, []
    def killed(method, *a):   # the second pretraining of seed 1 dies
        if 'seed_1' in str(a[-2]) and len(n) == 1: raise KeyboardInterrupt
        n.append(method); return real(method, *a)
    monkeypatch.setattr(R, '_build_encoder', killed)
    with pytest.raises(KeyboardInterrupt): R.main(base + ['--seeds', '0,1'])
    monkeypatch.undo()
    assert not (run/'seed_0').exists() and len(list((run/'seed_1'/'encoders').glob('*.pth'))) == 1
    (run/'seed_1'/'.lock_pretrain_simclr').write_text(f'999999999 {socket.gethostname()}')   # as a kill -9 leaves it
    R.main(base + ['--seeds', '0,1'])
    assert {f.name: f.stat().st_mtime_ns for f in (run/'encoders').glob('*.pth')} == enc0   # seed 0 reused, nothing retrained
    au1 = pd.read_csv(run/'seed_1'/'transfer'/'auc.csv')
    assert set(au1.method) == set(R.METHODS) and set(au1.protocol) == {'sklearn', 'finetune'}
    from modan_nb.models import load_encoder
    w = [load_encoder(d/'encoders'/'modan_mulsupcon.pth')[0].state_dict() for d in (run, run/'seed_1')]
    assert any(not torch.equal(w[0][k], w[1][k]) for k in w[0])   # another pretraining seed, another encoder
    assert json.loads((run/'seed_1'/'settings.json').read_text())['pretrain_seed'] == 1 and json.loads((run/'settings.json').read_text())['seed'] == 0
    t = pd.read_csv(run/'seeds_tests.csv')
    assert len(t) == 2*(len(R.METHODS) - 1) and (t.n_seeds == 2).all() and t.p_adj.between(0, 1).all()
    text = rep.read_text()
    for s in (R.SEEDS_TAG, '## What holds across seeds', 'hierarchical bootstrap', 'Wall time', 'seed 0 ', 'seed 1',
              'Embedding geometry per seed', '## Single seed (seed 0, as reported before)', '### sklearn probe', 'MY SEED-0 READING'):
        assert s in text, s
    assert text.index('MY SEED-0 READING') > text.index('## Single seed') and 'as it was written (verbatim' in text
    assert "it is this run's seed 0 (the run folder held it)" in text   # the note says whose numbers the single-seed report holds
    # rewriting the report (--report-only) keeps both readings and the single-seed section once
    rep.write_text(text.replace('_(to be written from the numbers below)_', 'MY SEEDS READING'))
    R.main(base + ['--seeds', '0,1', '--report-only'])
    again = rep.read_text()
    assert again.count('## Single seed') == 1 and again.count('MY SEED-0 READING') == 1 and again.count('MY SEEDS READING') == 1
    assert again.count('as it was written (verbatim') == 1 and again.split('## Single seed')[1] == text.split('## Single seed')[1]
    with pytest.raises(SystemExit, match="'epochs'"): R.main(base + ['--seeds', '0,1', '--epochs', '2'])
    with pytest.raises(SystemExit, match='pass --seeds'): R.main(base)   # a single-seed call on a folder of seeds
