"Run by tests/test_distributed_pretrain.py under torchrun (2 CPU processes, gloo)."
import os, sys, json
from pathlib import Path
from unittest import mock
import torch
from fastai.callback.core import Callback
sys.path.insert(0, str(Path(__file__).parent))
import modan_nb.losses as losses
from modan_nb.learner import modan_pretrain, make_loss

class SeenBatch(Callback):
    "Record what the contrastive loss saw in each step (its own diagnostics), and the views this process draws for a fixed image."
    order = 100
    def before_fit(self): self.seen, self.probe = [], None
    def before_batch(self):
        if self.probe is not None: return
        aug = self.learn.cbs.filter(lambda c: type(c).__name__ == 'MultiViewCallback')[0].aug
        with torch.random.fork_rng(devices=[]): # the same draws the callback makes next, without using them up
            self.probe = aug(torch.linspace(0, 1, 256).view(1, 1, 16, 16)).flatten().tolist()
    def after_loss(self):
        st = self.learn.loss_func.last_stats
        self.seen.append(dict(n_images=st['n_images'], n_anchors=st['n_anchors'], n_valid_global=int(st['n_valid_global'])))

def main(csv, out):
    torch.set_num_threads(1)
    seen = SeenBatch()
    learn = modan_pretrain(csv, epochs=1, bs=8, size=16, path=Path(out)/'run', cbs=[seen], progress=False)
    rank, ws = torch.distributed.get_rank(), torch.distributed.get_world_size()
    # the learner's loss (reshape + the real Jaccard loss, gathering once) against one process on the whole batch
    torch.manual_seed(0)
    V, B = 2, 4
    pred, y = torch.randn(V*B*ws, 8), torch.randint(0, 2, (B*ws, 3)).float()
    y[:, 0] = 1
    mine = torch.cat([pred[v*B*ws + rank*B: v*B*ws + (rank+1)*B] for v in range(V)]).requires_grad_()
    loss = make_loss('modan')(mine, y[rank*B:(rank+1)*B])
    loss.backward()
    full = pred.clone().requires_grad_()
    with mock.patch.object(losses, 'world_size', lambda: 1): ref = make_loss('modan')(full, y) # no gather: one process's view
    ref.backward()
    ref_mine = torch.cat([full.grad[v*B*ws + rank*B: v*B*ws + (rank+1)*B] for v in range(V)])
    mean_loss = loss.detach().clone(); torch.distributed.all_reduce(mean_loss); mean_loss /= ws # what DDP's averaging optimises
    res = dict(rank=rank, ws=ws, seen=seen.seen, probe=seen.probe, n_steps=learn.n_steps, loss=float(mean_loss), ref=float(ref),
               grad_ok=bool(torch.allclose(mine.grad, ws*ref_mine, atol=1e-5)),
               encoder=(Path(out)/'run'/'encoder.pth').is_file())
    (Path(out)/f'rank{rank}.json').write_text(json.dumps(res))

if __name__ == '__main__': main(sys.argv[1], sys.argv[2])
