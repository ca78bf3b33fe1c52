"""Images/second of `modan_pretrain` against a plain PyTorch loop doing the same work (CPU, 64 px).

Same model (ResNet-18 paper stem + projection head), same batched views (ViewAugment), same loss (Jaccard SupCon),
same optimiser (torch SGD), same batch. Usage: python bench/bench_pretrain.py [--n 128] [--bs 32] [--epochs 2] [--threads 2]
"""
import argparse, sys, tempfile, time
from pathlib import Path
import torch
from fastai.callback.core import Callback
sys.path.insert(0, str(Path(__file__).parents[1]/'tests'))
from _pretrain_helpers import tiny_table
from modan_nb.core import seed_everything
from modan_nb.models import create_encoder, ContrastiveModel
from modan_nb.learner import modan_pretrain, ViewAugment, make_loss
from modan_nb.data import pretrain_dls

class Timer(Callback):
    "Time the training steps after the first (warm-up) one."
    order = 100
    def before_fit(self): self.n_img, self.t0 = 0, None
    def after_batch(self):
        if self.t0 is None: self.t0 = time.perf_counter(); return
        self.n_img += self.learn.xb[0].shape[0] // 2
    def after_fit(self): self.dt = time.perf_counter() - self.t0

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
            if t0 is None: t0 = time.perf_counter(); continue
            n += x.shape[0]
    return n / (time.perf_counter() - t0)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=128); ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--epochs', type=int, default=2); ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--repeats', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as d:
        csv = tiny_table(d, n=a.n, px=a.size)
        res = {'fastai': [], 'plain': []}
        for r in range(a.repeats): # interleaved, so load from other users hits both alike
            t = Timer()
            modan_pretrain(csv, epochs=a.epochs, bs=a.bs, size=a.size, path=Path(d)/f'run{r}', cbs=[t], progress=False,
                           device='cpu')
            res['fastai'].append(t.n_img / t.dt)
            res['plain'].append(plain_loop(csv, a.bs, a.size, a.epochs))
    f, p = max(res['fastai']), max(res['plain'])
    print(f"CPU, {a.size} px, batch {a.bs} x 2 views, {a.n} images, {a.epochs} epochs, {a.threads} threads, best of {a.repeats}")
    print(f"modan_pretrain : {f:7.1f} images/s   (runs: {', '.join(f'{x:.1f}' for x in res['fastai'])})")
    print(f"plain loop     : {p:7.1f} images/s   (runs: {', '.join(f'{x:.1f}' for x in res['plain'])})")
    print(f"ratio modan_pretrain / plain = {f/p:.2f}")

if __name__ == '__main__': main()
