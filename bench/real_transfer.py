"""Real-data benchmark: pretrain every method on the real multi-modality pool and transfer to real BUSI and DDTI.

Pretraining data: ../shared/data/pretrain_pool.csv (real CT, MR and US images: BUSI normal, DDTI unlabelled, brain MRI,
head CT; no image of a downstream task). Tasks: BUSI malignant vs benign + normal, DDTI labelled crops (folds by case).
Prints the paper-style tables with the pooled paired DeLong p-values against ModAn-MulSupCon, and where the report is.
A benchmark, not a test: on 2 CPU cores it takes tens of minutes. Interrupt it and run it again to resume.

    python bench/real_transfer.py [--size 48] [--epochs 15] [--repeats 2] [--folds 5] [--fresh]
"""
import argparse, sys, time
from pathlib import Path
from modan_nb.core import shared_data_dir
from modan_nb.experiments import ExperimentConfig, run_experiment, print_summary, ALL_METHODS
from modan_nb.stats import markdown_table

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--size', type=int, default=48, help='pretraining and task image size (px)')
    ap.add_argument('--epochs', type=int, default=15, help='pretraining epochs per method')
    ap.add_argument('--bs', type=int, default=128, help='pretraining batch size')
    ap.add_argument('--ft-epochs', type=int, default=4, help='downstream epochs (fine-tune and linear)')
    ap.add_argument('--folds', type=int, default=5)
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--protocols', default='sklearn,linear,finetune')
    ap.add_argument('--name', default='real_transfer')
    ap.add_argument('--fresh', action='store_true', help='delete an earlier run of this name first')
    a = ap.parse_args()
    shared = shared_data_dir()
    if shared is None or not (shared/'pretrain_pool.csv').is_file():
        sys.exit("../shared/data (with pretrain_pool.csv, busi/, ddti/) is not here: nothing to benchmark")
    cfg = ExperimentConfig(name=a.name, pretrain=str(shared/'pretrain_pool.csv'), methods=list(ALL_METHODS),
                           tasks={'breast': dict(reader='busi', root=str(shared/'busi')),
                                  'thyroid': dict(reader='ddti', root=str(shared/'ddti'))},
                           protocols=a.protocols.split(','), n_folds=a.folds, repeats=a.repeats, fractions=[1.0],
                           stem='paper', pretrain_size=a.size, pretrain_epochs=a.epochs, pretrain_bs=a.bs,
                           task_size=a.size, ft_epochs=a.ft_epochs, ft_bs=32, ft_lr=1e-3, ft_step=max(1, a.ft_epochs//2),
                           umap=True, seed=0).validate()
    from modan_nb.experiments import _run_and_print
    res = _run_and_print(cfg, a.fresh)
    print('\n== pooled out-of-fold AUC with 95% DeLong CI, one score per patient ==')
    ci = res['auc_ci']
    print(markdown_table(ci[['method', 'task', 'protocol', 'auc', 'auc_lo', 'auc_hi']].round(3), index=False))

if __name__ == '__main__': main()
