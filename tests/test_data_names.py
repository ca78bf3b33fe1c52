"""One home per name: the downstream-task names live in modan_nb.tasks (notebook 03b), the image grid in modan_nb.plotting
(notebook 00a); modan_nb.data forwards nothing."""
import subprocess, sys
import pytest

TASK_NAMES = ['TASK_COLUMNS', 'DUPLICATES', 'MRNET_PLANES', 'MRNET_TASKS', 'RIN_SPLIT_FILES', 'read_busi', 'ddti_case', 'read_ddti',
              'read_thyroid_folders', 'read_busbra', 'read_kneeoa', 'read_mrnet', 'carve_valid', 'read_radimagenet_split',
              'read_medmnist', 'clear_task_cache', 'task_tensor', 'show_task', 'content_hash', 'array_hashes', 'check_duplicates',
              'make_folds', 'save_folds', 'load_folds', 'check_fraction', 'subsample_fraction']

def test_task_names_live_in_tasks_only():
    from modan_nb import data, tasks
    for n in TASK_NAMES:
        exec(f'from modan_nb.tasks import {n}', {})
        assert n not in data.__all__, n
    assert not hasattr(data, '__getattr__'), "modan_nb.data must not forward names to modan_nb.tasks"
    with pytest.raises(ImportError): exec('from modan_nb.data import read_busi', {})
    assert not set(data.__all__) & set(tasks.__all__)

def test_show_images_has_one_home():
    from modan_nb import data, plotting
    assert 'show_images' in plotting.__all__ and 'show_images' not in data.__all__

@pytest.mark.parametrize('first', ['modan_nb.data', 'modan_nb.tasks'])
def test_import_order(first):
    "No circular-import trouble: either module can be imported first, in a fresh interpreter."
    code = (f"import {first}\nfrom modan_nb.data import pretrain_dls\n"
            "from modan_nb.tasks import read_busi, make_folds, check_duplicates\n")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
