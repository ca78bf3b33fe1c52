"""Images/second of `modan_pretrain` (the fastai path) against a plain PyTorch loop doing the same work, CPU.

Same data (`pretrain_dls`), model (ResNet-18 paper stem + projection head), batched views (ViewAugment), loss (Jaccard
SupCon), optimiser (torch SGD 0.9 / 1e-4) and batch. Both run in this one process, interleaved (fastai, plain, fastai,
plain, ...), so load from other users hits both alike; each is timed from the end of its first (warm-up) step to the
end of its last. Reported: the median of the repeats for each, the ratio of medians, and the spread of the per-pair
ratios (min, quartiles, max). The fastai path also writes a full checkpoint (model + optimiser + random states) after
every epoch; its share is measured and reported, and the ratio is given with and without it. Both wall-clock and this
process's CPU time are reported: on a shared, loaded machine the wall clock mostly measures the other users.

Usage: python bench/bench_pretrain.py [--n 64] [--bs 32] [--epochs 3] [--size 64] [--threads 1] [--repeats 5]
"""
import argparse, statistics, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, torch
from fastai.callback.core import Callback
sys.path.insert(0, str(Path(__file__).parents[1]/'tests'))
from _pretrain_helpers import tiny_table
from modan_nb.core import seed_everything
from modan_nb.models import create_encoder, ContrastiveModel
from modan_nb.learner import modan_pretrain, ViewAugment, make_loss
from modan_nb.data import pretrain_dls

class Timer(Callback):
    "Time the training steps after the first (warm-up) one, and the checkpoint writes (ResumableCheckpoint, order 65)."
    order = 100
    def before_fit(self): self.n_img, self.t0, self.ckpt, self.ckpt_cpu = 0, None, 0., 0.
    def after_batch(self):
        if self.t0 is None: self.t0, self.c0 = time.perf_counter(), time.process_time(); return
        self.n_img += self.learn.xb[0].shape[0] // 2
    def after_fit(self): self.dt, self.dc = time.perf_counter() - self.t0, time.process_time() - self.c0

class CkptClock(Callback):
    "Around the checkpoint callback's after_epoch: order 64 starts the clock, a twin at order 66 stops it."
    def __init__(self, timer, start): self.timer, self.start, self.order = timer, start, 64 if start else 66
    def after_epoch(self):
        if self.start: self.timer._c0, self.timer._p0 = time.perf_counter(), time.process_time()
        else: self.timer.ckpt += time.perf_counter() - self.timer._c0; self.timer.ckpt_cpu += time.process_time() - self.timer._p0

def plain_loop(csv, bs, size, epochs, seed=0):
    seed_everything(seed)
    dls = pretrain_dls(csv, size=size, bs=bs, device='cpu', seed=seed)
    model = ContrastiveModel(create_encoder())
    aug, loss_fn = ViewAugment(size=size), make_loss('modan')
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    model.train(); n, t0 = 0, None
    for _ in range(epochs):
        for x, y, *_ in dls.train:
            if x.dtype == torch.uint8: x = x.float() / 255
            v = torch.cat([aug(x), aug(x)])
            loss = loss_fn(model(v), y)
            opt.zero_grad(); loss.backward(); opt.step()
            if t0 is None: t0, c0 = time.perf_counter(), time.process_time(); continue
            n += x.shape[0]
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=64); ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--epochs', type=int, default=3); ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--threads', type=int, default=1); ap.add_argument('--repeats', type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); warnings.filterwarnings('ignore')
    res = {k: [] for k in ('fastai', 'fastai_no_ckpt', 'plain', 'fastai_cpu', 'fastai_no_ckpt_cpu', 'plain_cpu')}
    with tempfile.TemporaryDirectory() as d:
        csv = tiny_table(d, n=a.n, px=a.size)
        for r in range(a.repeats): # interleaved
            t = Timer()
            modan_pretrain(csv, epochs=a.epochs, bs=a.bs, size=a.size, path=Path(d)/f'run{r}', device='cpu',
                           cbs=[t, CkptClock(t, True), CkptClock(t, False)], progress=False)
            res['fastai'].append(t.n_img / t.dt); res['fastai_no_ckpt'].append(t.n_img / (t.dt - t.ckpt))
            res['fastai_cpu'].append(t.n_img / t.dc); res['fastai_no_ckpt_cpu'].append(t.n_img / (t.dc - t.ckpt_cpu))
            w, c = plain_loop(csv, a.bs, a.size, a.epochs); res['plain'].append(w); res['plain_cpu'].append(c)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"CPU, {a.size} px, batch {a.bs} x 2 views, {a.n} images, {a.epochs} epochs ({a.n//a.bs*a.epochs - 1} timed steps per run), "
          f"{a.threads} thread(s), {a.repeats} interleaved repeats; torch {torch.__version__}")
    for clock, sfx in [('wall-clock time', ''), ('this process\'s CPU time (what other users\' load does not inflate)', '_cpu')]:
        print(f"-- images/s of {clock}")
        for k, label in [('fastai', 'modan_pretrain            '), ('fastai_no_ckpt', '  without checkpoint writes'), ('plain', 'plain PyTorch loop        ')]:
            print(f"{label}: median {med[k+sfx]:6.1f} images/s   (runs: {', '.join(f'{x:.1f}' for x in res[k+sfx])})")
        for k, what in [('fastai', 'ratio modan_pretrain / plain'), ('fastai_no_ckpt', 'ratio without checkpoint writes')]:
            q = np.quantile(np.array(res[k+sfx]) / np.array(res['plain'+sfx]), [0, .25, .5, .75, 1])
            print(f"{what}: {med[k+sfx]/med['plain'+sfx]:.2f} (ratio of medians); per-pair ratios min {q[0]:.2f}, quartiles "
                  f"{q[1]:.2f} / {q[2]:.2f} / {q[3]:.2f}, max {q[4]:.2f}")

if __name__ == '__main__': main()
