"A tiny pretraining killed (SIGKILL) at random points, at least 20 times, and resumed each time ends with the weights and log of an uninterrupted run."
import multiprocessing as mp, os, random, signal, sys, time, warnings
from pathlib import Path
import pandas as pd, pytest, torch
sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_helpers import tiny_table
from modan_nb.learner import modan_pretrain
from modan_nb.models import load_encoder

KW = dict(epochs=6, bs=8, size=8, seed=5, progress=False)

def _child(csv, path):
    warnings.filterwarnings('ignore'); torch.set_num_threads(1)
    try: modan_pretrain(csv, path=path, resume=True, **KW)
    finally: os._exit(0)

def test_killed_pretraining_resumes_to_the_same_weights(tmp_path):
    if 'fork' not in mp.get_all_start_methods(): pytest.skip('needs fork')
    torch.set_num_threads(1)
    csv = tiny_table(tmp_path, n=16, px=8)
    t0 = time.perf_counter(); modan_pretrain(csv, path=tmp_path/'full', **KW); T = time.perf_counter() - t0
    ctx, rng, kills, runs = mp.get_context('fork'), random.Random(0), 0, 0
    run = tmp_path/'cut'
    while kills < 20:
        p = ctx.Process(target=_child, args=(csv, run)); p.start(); runs += 1
        p.join(timeout=rng.uniform(0.05, T))
        if p.is_alive(): os.kill(p.pid, signal.SIGKILL); p.join(); kills += 1
        elif (run/'encoder.pth').is_file(): # finished before the kill: start again from nothing, keep killing
            for f in run.iterdir(): f.unlink()
        assert runs < 200, 'no progress'
    modan_pretrain(csv, path=run, resume=True, **KW) # the last resume runs to the end
    full, cut = load_encoder(tmp_path/'full'/'encoder.pth')[0].state_dict(), load_encoder(run/'encoder.pth')[0].state_dict()
    for k in full: assert torch.allclose(full[k].float(), cut[k].float(), atol=1e-6), k
    hf, hc = pd.read_csv(tmp_path/'full'/'history.csv'), pd.read_csv(run/'history.csv')
    assert hc.epoch.tolist() == list(range(KW['epochs'])), hc
    assert (hf.train_loss - hc.train_loss).abs().max() < 1e-5
    assert not [f.name for f in run.iterdir() if f.name.endswith('.tmp')] # the last resume removed what the kills left
