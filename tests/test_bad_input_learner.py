"Bad input to pretraining: each is refused before training with a message that names the file, value or setting (or skipped on request)."
import sys, warnings
from pathlib import Path
import pandas as pd, pytest, torch
sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_helpers import tiny_table
from modan_nb.learner import pretrain, modan_pretrain, simclr_pretrain, supcon_pretrain, ce_pretrain

KW = dict(epochs=1, bs=8, size=16)

@pytest.fixture
def csv(tmp_path):
    torch.set_num_threads(1)
    return tiny_table(tmp_path, n=16, px=24)

def test_unreadable_image_named_or_skipped(csv, tmp_path):
    bad = tmp_path/'img'/'3.png'; bad.write_bytes(b'not a png at all')
    with pytest.raises(ValueError, match=r"image .*img/3\.png cannot be read.*on_bad='skip'"):
        modan_pretrain(csv, path=tmp_path/'a', **KW)
    with pytest.warns(UserWarning, match=r"1 unreadable image\(s\) left out \(on_bad='skip'\), first: .*3\.png"):
        learn = modan_pretrain(csv, path=tmp_path/'b', on_bad='skip', **KW)
    assert [Path(f).name for f, _ in learn.bad_files] == ['3.png'] and len(learn.dls.train.dataset) == 15
    assert (tmp_path/'b'/'encoder.pth').is_file()

def test_missing_image_named_or_skipped(csv, tmp_path):
    (tmp_path/'img'/'5.png').unlink()
    with pytest.raises(FileNotFoundError, match=r"5\.png"):
        modan_pretrain(csv, path=tmp_path/'a', **KW)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn = modan_pretrain(csv, path=tmp_path/'b', on_bad='skip', **KW)
    assert [Path(f).name for f, _ in learn.bad_files] == ['5.png']

def test_zero_loss_settings_refused(csv, tmp_path):
    with pytest.raises(ValueError, match=r"n_views=1: simclr is contrastive.*Use n_views >= 2"):   # modan/supcon: positives across images
        simclr_pretrain(csv, path=tmp_path/'z', n_views=1, **KW)
    with pytest.raises(ValueError, match=r"n_views=1: simclr"): pretrain('simclr', csv, path=tmp_path/'z', n_views=1, **KW)
    one = pd.read_csv(csv).assign(modality='CT', anatomy='brain', label='x')
    with pytest.raises(ValueError, match='at least 2 classes'): ce_pretrain(one, root=tmp_path, path=tmp_path/'z', **KW)
    assert not (tmp_path/'z').exists()

def test_ce_without_label_column(csv, tmp_path):
    df = pd.read_csv(csv).drop(columns='label')
    with pytest.raises(KeyError, match=r"no column\(s\) \['label'\].*pass label_from='pair'"):
        ce_pretrain(df, root=tmp_path, path=tmp_path/'a', **KW)
    learn = ce_pretrain(df, root=tmp_path, path=tmp_path/'b', label_from='pair', **KW)
    assert learn.pretrain_info['ce_class'] == 'modality/anatomy'

@pytest.mark.parametrize('kw, says', [
    (dict(lr=-1), "lr=-1: must be a number > 0"), (dict(schedule='linear'), "schedule='linear': choose one of"),
    (dict(head='big'), "head='big': choose one of"), (dict(tau=1.5), "tau=1.5: must be in (0, 1]"),
    (dict(crop_scale=(0.5, 0.2)), "crop_scale=(0.5, 0.2)"), (dict(opt='adamw'), "opt must be 'sgd' or 'adam'"),
    (dict(recipe='author'), "unknown recipe 'author'"), (dict(label_from='finding'), "label_from must be one of"),
    (dict(size=4), "size must be an int of at least 8 px"), (dict(bs=1), 'bs must be an int >= 2')])
def test_bad_settings(csv, tmp_path, kw, says):
    args = dict(KW, **kw)
    with pytest.raises((ValueError, TypeError)) as e: pretrain('modan', csv, path=tmp_path/'x', **args)
    assert says in str(e.value), str(e.value)

def test_unknown_keyword_lists_the_accepted(csv, tmp_path):
    with pytest.raises(TypeError, match=r"unexpected keyword\(s\) \['learning_rate'\].*recipe fields.*data options.*run options"):
        modan_pretrain(csv, path=tmp_path/'x', learning_rate=0.1, **KW)
