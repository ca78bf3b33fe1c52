"modan_nb.data keeps every public name it had before the downstream half moved to modan_nb.tasks (notebook 03b)."
import subprocess, sys
import pytest

# modan_nb/data.py's __all__ before the split (03_data -> 03_data + 03b_tasks)
OLD_ALL = ['RESIZE_METHODS', 'TASK_COLUMNS', 'DUPLICATES', 'MRNET_PLANES', 'MRNET_TASKS', 'RIN_SPLIT_FILES', 'BadImageError',
           'load_image', 'load_volume', 'volume_shape', 'resize_image', 'load_resized', 'resolve_paths', 'decode_images',
           'read_pretrain_table', 'PretrainDataset', 'TensorImageDL', 'show_images', 'pretrain_dls', 'show_pretrain_batch',
           'sha256_file', 'make_minirin', 'read_busi', 'ddti_case', 'read_ddti', 'read_thyroid_folders', 'read_busbra',
           'read_kneeoa', 'read_mrnet', 'carve_valid', 'read_radimagenet_split', 'read_medmnist', 'clear_task_cache',
           'task_tensor', 'show_task', 'content_hash', 'array_hashes', 'check_duplicates', 'make_folds', 'save_folds',
           'load_folds', 'check_fraction', 'subsample_fraction']

ADDED = ['ImageStore', 'STORE_FIELDS', 'TABLE_OPTIONS'] # since the split: how pretrain_dls decodes and keeps images

def test_every_old_name_importable_from_data():
    from modan_nb import data, tasks
    for n in OLD_ALL:
        exec(f'from modan_nb.data import {n}', {})
        assert getattr(data, n) is (getattr(tasks, n) if n in tasks.__all__ else data.__dict__[n]), n
    assert set(OLD_ALL) | set(ADDED) == set(data.__all__) | set(tasks.__all__)   # nothing lost, nothing public added but `ADDED`
    assert set(OLD_ALL) <= set(dir(data))
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"): data.no_such_name

@pytest.mark.parametrize('first', ['modan_nb.data', 'modan_nb.tasks'])
def test_import_order(first):
    "No circular-import trouble: either module can be imported first, in a fresh interpreter."
    code = (f"import {first}\nfrom modan_nb.data import read_busi, make_folds, check_duplicates, pretrain_dls\n"
            "from modan_nb.tasks import read_busi as r2\nimport modan_nb.data as d\nassert d.read_busi is r2 and d._TASK_CACHE is not None\n")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
