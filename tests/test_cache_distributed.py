"Pretraining from a cache on 2 CPU processes (gloo): each rank reads only its own share of the images, the two shares make the epoch."
import json, os, subprocess, sys
from pathlib import Path
import pytest
sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_helpers import tiny_table

pytest.importorskip('accelerate', reason="fastai's distributed training needs accelerate")

def test_two_process_pretrain_from_cache(tmp_path):
    csv = tiny_table(tmp_path, n=16, px=24)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(Path(__file__).parents[1]), IN_TEST='1', MODAN_DEVICE='cpu',
               CUDA_VISIBLE_DEVICES='')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29547',
           str(Path(__file__).parent/'_cache_distributed_worker.py'), str(csv), str(tmp_path/'cache'), str(tmp_path)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = [json.loads((tmp_path/f'rank{i}.json').read_text()) for i in range(2)]
    assert all(o['cached'] == 'CachedImages' and o['n_steps'] == 2 for o in res)   # 16 images / global batch 8
    a, b = set(res[0]['read']), set(res[1]['read'])
    assert len(res[0]['read']) == len(res[1]['read']) == 8   # 2 batches of 4 per rank, each read once
    assert not a & b and a | b == set(range(16))   # each rank its own share; together the whole epoch
    assert (tmp_path/'cache'/'header.json').is_file() and json.loads((tmp_path/'cache'/'header.json').read_text())['complete']
