"RadImageNet's downstream split tables end to end: every fold trains on its own non-empty train rows and scores only its test rows."
import numpy as np, pandas as pd, pytest, torch
import torch.nn as nn
from PIL import Image
from modan_nb.tasks import read_radimagenet_split, RIN_SPLIT_FILES
from modan_nb.transfer import run_transfer, fit_binary, TransferRecipe, TransferTask, BinaryClassifier

torch.set_num_threads(1)

from _transfer_helpers import TinyEncoder

def encoders():
    torch.manual_seed(0); return {'A': TinyEncoder()}

N_CASES = 20   # thyroid cases 0..19, 1-2 images each; even cases benign, odd malignant

def write_thyroid_tables(root):
    "RadImageNet's thyroid layout: images/CASE_N.jpg and dataframe/thyroid_{train,val,test}_fold{k}.csv, cases rotated over folds."
    rng = np.random.default_rng(0)
    images = {c: [f'images/{c}_{k}.jpg' for k in range(1, 2 + c % 2)] for c in range(N_CASES)}
    (root/'thyroid'/'images').mkdir(parents=True)
    for c, fns in images.items():
        for fn in fns:   # every image different (no duplicates); malignant ones brighter
            a = (rng.random((12, 12))*150 + (60 if c % 2 else 0)).astype(np.uint8)
            Image.fromarray(a).save(root/'thyroid'/fn, quality=95)
    (root/'thyroid'/'dataframe').mkdir()
    expected = {}
    for fold in range(1, 6):
        order = np.roll(np.arange(N_CASES), 4*(fold-1))
        parts = {'test': order[:4], 'val': order[4:8], 'train': order[8:]}
        for split, cases in parts.items():
            fns = [fn for c in cases for fn in images[c]]
            lab = ['malignant' if int(fn.split('/')[1].split('_')[0]) % 2 else 'benign' for fn in fns]
            pd.DataFrame(dict(img_dir=fns, label=lab)).to_csv(root/'thyroid'/'dataframe'/RIN_SPLIT_FILES['thyroid'].format(split=split, fold=fold), index=False)
            expected[(fold, split)] = set(fns)
    return expected

@pytest.fixture
def rin(tmp_path):
    expected = write_thyroid_tables(tmp_path/'rin')
    return read_radimagenet_split(tmp_path/'rin', 'thyroid'), expected

def test_reader_reads_all_five_folds(rin):
    df, expected = rin
    assert sorted(df['fold'].unique()) == [1, 2, 3, 4, 5] and set(df['split']) == {'train', 'val', 'test'}
    assert {'path', 'label', 'group', 'item', 'fold', 'split'} <= set(df.columns)
    for (fold, split), items in expected.items():
        assert set(df.loc[(df.fold == fold) & (df.split == split), 'item']) == items
    assert len(df) == sum(len(v) for v in expected.values())

@pytest.mark.parametrize('recipe', [TransferRecipe.paper(), TransferRecipe.authors()], ids=['paper', 'authors'])
def test_every_fold_trains_and_scores_its_test_rows(rin, tmp_path, recipe):
    df, expected = rin
    auc, scores = run_transfer(encoders(), TransferTask(df, 'thyroid'), recipe.replace(size=12, epochs=2, bs=8, repeats=2), out_dir=tmp_path/'out',
                               seed=0, device='cpu')
    assert len(auc) == 3*5*2   # protocols x folds x repeats
    for _, r in auc.iterrows():
        n_train, n_val = len(expected[(r.fold, 'train')]), len(expected[(r.fold, 'val')])
        assert r.n_train == n_train > 0
        assert r.n_valid == (n_val if recipe.select == 'best' else 0)
        assert r.n_test == len(expected[(r.fold, 'test')])
        assert 0 <= r.auc <= 1
    for (fold, proto, rep), s in scores.groupby(['fold', 'protocol', 'repeat']):
        assert set(s['case']) == expected[(fold, 'test')] and len(s) == len(s['case'].unique())
    if recipe.select == 'best':   # the fine-tuned epoch is chosen on the fold's own val table
        assert auc.loc[auc.protocol == 'finetune', 'best_epoch'].between(1, 2).all()

def test_empty_or_one_class_training_split_refused_before_writing(rin, tmp_path):
    df, _ = rin
    one_class = df[~((df.fold == 3) & (df.split == 'train') & (df.label == 0))]
    with pytest.raises(ValueError, match=r"fold 3: the training set has one class only"):
        run_transfer(encoders(), TransferTask(one_class, 'thyroid'), out_dir=tmp_path/'o1', size=12, epochs=1, repeats=1, device='cpu')
    empty = df[~((df.fold == 2) & (df.split == 'train'))]
    with pytest.raises(ValueError, match=r"fold 2: the training set is empty"):
        run_transfer(encoders(), TransferTask(empty, 'thyroid'), out_dir=tmp_path/'o2', size=12, epochs=1, repeats=1, device='cpu')
    assert not (tmp_path/'o1'/'auc.csv').exists() and not (tmp_path/'o2'/'auc.csv').exists()
    assert not (tmp_path/'o1'/'config.json').exists()

def test_patient_in_two_splits_refused(rin, tmp_path):
    df, _ = rin
    leak = df.copy()
    i = leak.index[(leak.fold == 1) & (leak.split == 'test')][0]
    j = leak.index[(leak.fold == 1) & (leak.split == 'train')][0]
    leak.loc[j, 'group'] = leak.loc[i, 'group']
    with pytest.raises(ValueError, match='a patient in two splits'):
        run_transfer(encoders(), TransferTask(leak, 'thyroid'), size=12, epochs=1, repeats=1, device='cpu')

def test_fit_binary_refuses_an_empty_training_set():
    with pytest.raises(ValueError, match='training set is empty'):
        fit_binary(BinaryClassifier(TinyEncoder()), torch.zeros(0, 1, 8, 8), np.zeros(0), device='cpu')

def test_authors_normalisation_is_switched_off_on_a_copy():
    from modan_nb.transfer import _prepare_encoder
    enc = TinyEncoder()
    raw = _prepare_encoder(enc, TransferRecipe.authors())
    assert float(raw.mean.abs().max()) == 0 and float(raw.std.min()) == float(raw.std.max()) == 1
    assert float(enc.mean.max()) == 0.5 and _prepare_encoder(enc, TransferRecipe.paper()) is enc
    with pytest.raises(ValueError, match="normalize='none' needs an encoder with `mean` and `std`"):
        _prepare_encoder(nn.Linear(2, 2), TransferRecipe.authors())

def test_authors_recipe_on_multiplane_exams():
    "Exams of two planes, the authors' recipe (probe behind a frozen encoder in training mode), exams fine-tuned in chunks."
    g = torch.Generator().manual_seed(0)
    n, rows, vols = 16, [], []
    for i in range(n):
        for p, s in (('axial', 3), ('sagittal', 4)):
            rows.append(dict(path=f'{p}/{i:04d}.npy', label=i % 2, group=f'{i:04d}', plane=p))
    df = pd.DataFrame(rows)
    inputs = [tuple((torch.rand(s, 1, 8, 8, generator=g)*150 + 60*(i % 2)).to(torch.uint8) for s in (3, 4)) for i in range(n)]
    recipe = TransferRecipe.authors(size=8, epochs=2, probe_epochs=2, bs=4, repeats=1, n_folds=2, max_slices=10)
    auc, scores = run_transfer(encoders(), TransferTask(df, 'acl', inputs=inputs), recipe, protocols=('finetune', 'linear'), device='cpu')
    assert len(auc) == 2*2 and (auc.n_valid == 0).all() and (auc.best_epoch == 2).all()
    assert scores.groupby(['protocol', 'fold'])['case'].nunique().sum() == 2*n and scores['score'].between(0, 1).all()
