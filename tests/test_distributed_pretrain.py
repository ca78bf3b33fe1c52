"The distributed path (fastai's distrib_ctx + accelerate) on 2 CPU processes with gloo; the loss gathers once and sees the global batch; the ranks draw different views."
import json, os, subprocess, sys
from pathlib import Path
import pytest
sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_helpers import tiny_table

pytest.importorskip('accelerate', reason="fastai's distributed training needs accelerate")

def test_two_process_pretrain(tmp_path):
    csv = tiny_table(tmp_path, n=16, px=24)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(Path(__file__).parents[1]), IN_TEST='1', MODAN_DEVICE='cpu',
               CUDA_VISIBLE_DEVICES='')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29531',
           str(Path(__file__).parent/'_distributed_worker.py'), str(csv), str(tmp_path)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = [json.loads((tmp_path/f'rank{i}.json').read_text()) for i in range(2)]
    for o in res:
        assert o['ws'] == 2
        # bs=8 is the global batch: 4 images per process, 2 views each (its 8 anchors); the loss gathered once, so the
        # anchors with a positive over both processes are the 2 x 8 views of the global batch (32 if it gathered twice)
        assert o['seen'] and all(s == dict(n_images=4, n_anchors=8, n_valid_global=16) for s in o['seen']), o['seen']
        assert o['n_steps'] == 2 # 16 images / global batch 8
        assert abs(o['loss'] - o['ref']) < 1e-5 and o['grad_ok']
    assert res[0]['encoder'] # rank 0 saved the encoder
    # each process draws its own augmentations: the same image gets different views on the two ranks
    assert res[0]['probe'] != res[1]['probe']
