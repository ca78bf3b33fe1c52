"Real data: a scikit-learn probe of an untrained ResNet-18 on BUSI and DDTI (small images) gives AUCs above chance."
import time, pytest, torch
from modan_nb.core import shared_data_dir, seed_everything

def _shared(sub):
    root = shared_data_dir()
    if root is None or not (root/sub).is_dir(): pytest.skip(f"shared data {sub}/ not available")
    return root/sub

@pytest.mark.parametrize('task', ['busi', 'ddti'])
def test_sklearn_probe_untrained(task):
    from modan_nb import data, tasks
    from modan_nb.models import create_encoder
    from modan_nb.transfer import run_transfer, TransferTask
    torch.set_num_threads(2)
    root = _shared(task)
    df = tasks.read_busi(root, include_normal=False) if task == 'busi' else tasks.read_ddti(root)
    seed_everything(0)
    enc = create_encoder(weights=None)
    kw = dict(protocols=('sklearn',), n_folds=3, repeats=1, size=32, device='cpu')
    n = len(df)
    if task == 'busi':   # BUSI holds one image twice, as benign (433) and as malignant (145): refused, then dropped on request
        with pytest.raises(ValueError, match=r"benign \(433\).*malignant \(145\).*same image"): run_transfer({'Scratch': enc}, TransferTask(df, task), **kw)
        n -= 1
    t = time.time()
    auc, scores = run_transfer({'Scratch': enc}, TransferTask(df, task, duplicates='drop'), **kw)
    print(f"{task}: {len(df)} images, {time.time()-t:.1f}s, fold AUCs {auc.auc.round(3).tolist()}")
    n_scored = scores.groupby('fold')['case'].nunique().sum()
    assert len(auc) == 3 and n_scored == auc['n_test'].sum() and n - 10 <= n_scored <= n   # at most a few copies dropped
    mean_auc = auc["auc"].mean()   # one repeat: the summary AUC
    assert 0.5 < mean_auc < 1, mean_auc
