"Multi-process check of modan_nb.losses: 2 CPU processes (gloo), each with part of the batch, against one process on the whole batch."
import os, socket, tempfile
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from modan_nb.losses import JaccardSupConLoss, SupConLoss, NTXentLoss

WORLD = 2

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _batch(n=10, V=2, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, V, D, generator=g, dtype=torch.float64)
    pairs = torch.randint(0, 4, (n,), generator=g)
    y = torch.zeros(n, 6, dtype=torch.float64)
    y[torch.arange(n), pairs % 2] = 1; y[torch.arange(n), 2 + pairs] = 1   # modality block (2) + anatomy block (4)
    return z, y, pairs

def _cases():
    "(name, loss factory, target kind, split sizes, V)"
    return [('jaccard-count', lambda: JaccardSupConLoss(0.1), 'multihot', (5, 5), 2),
            ('jaccard-weight', lambda: JaccardSupConLoss(0.2, normalize='weight'), 'multihot', (5, 5), 2),
            ('jaccard-unequal', lambda: JaccardSupConLoss(), 'multihot', (6, 4), 2),
            ('jaccard-V1', lambda: JaccardSupConLoss(threshold=1.0), 'multihot', (5, 5), 1),
            ('supcon', lambda: SupConLoss(0.1), 'int', (5, 5), 2),
            ('ntxent', lambda: NTXentLoss(), None, (5, 5), 2)]

def _call(fn, z, y, pairs, kind):
    return fn(z) if kind is None else fn(z, y if kind == 'multihot' else pairs)

def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=WORLD)
    try:
        res = {}
        for name, make, kind, split, V in _cases():
            z, y, pairs = _batch(sum(split), V)
            lo = sum(split[:rank]); sl = slice(lo, lo + split[rank])
            zl = z[sl].clone().requires_grad_()
            fn = make()
            loss = _call(fn, zl, y[sl], pairs[sl], kind)
            loss.backward()
            res[name] = dict(loss=loss.detach(), grad=zl.grad, n_without=fn.last_n_without_positive)
        torch.save(res, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()

@pytest.fixture(scope='module')
def ranks():
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_worker, args=(_free_port(), d), nprocs=WORLD, join=True)
        yield [torch.load(os.path.join(d, f'rank{r}.pt')) for r in range(WORLD)]

@pytest.mark.parametrize('case', _cases(), ids=[c[0] for c in _cases()])
def test_matches_single_process(ranks, case):
    name, make, kind, split, V = case
    z, y, pairs = _batch(sum(split), V)
    z = z.clone().requires_grad_()
    fn = make()
    loss = _call(fn, z, y, pairs, kind)
    loss.backward()
    # the mean of the ranks' losses is the single-process loss on the concatenated batch (what DDP's averaging optimises)
    torch.testing.assert_close(sum(r[name]['loss'] for r in ranks) / WORLD, loss.detach(), rtol=1e-10, atol=1e-10)
    # with equal valid-anchor counts each rank's loss is the mean over its own anchors
    per_anchor = fn.last_stats['per_anchor'].view(V, -1)
    if split[0] == split[1] and fn.last_n_without_positive == 0:
        for r in range(WORLD):
            lo = sum(split[:r])
            torch.testing.assert_close(ranks[r][name]['loss'], per_anchor[:, lo:lo + split[r]].mean(), rtol=1e-10, atol=1e-10)
    # gradients flow back to every rank's own embeddings: rank r receives sum_s dL_s/dz_r = WORLD * dL/dz_r,
    # so DDP's mean over ranks of the parameter gradients is exactly the single-process gradient
    for r in range(WORLD):
        lo = sum(split[:r])
        g = ranks[r][name]['grad']
        assert g is not None and g.abs().sum() > 0
        torch.testing.assert_close(g / WORLD, z.grad[lo:lo + split[r]], rtol=1e-9, atol=1e-12)
    assert sum(r[name]['n_without'] for r in ranks) == fn.last_n_without_positive
