"""A torchreid dataset class for a synthreid export with any number of ids: copy this file
beside your training script. torchreid's own Market1501 class asserts ids <= 1501 and would stop
at the first larger one; this one reads the same layout and file names without that bound.

    import torchreid
    from torchreid_dataset import SynthReid
    torchreid.data.register_image_dataset("synthreid", SynthReid)
    datamanager = torchreid.data.ImageDataManager(root="/data", sources="synthreid", ...)
    # expects /data/synthreid/{bounding_box_train,query,bounding_box_test}/

fast-reid: build its ImageDataset from the same three `read_folder` lists (train ids prefixed
with the dataset name, as its Market1501 does).
"""

import glob
import os.path as osp
import re

NAME = re.compile(r"([-\d]+)_c(\d)")  # torchreid's Market-1501 pattern


def read_folder(dir_path, relabel=False):
    """[(path, pid, camid)] of the JPEGs in `dir_path`, cameras from 0, ids as named (or
    0..N-1 in name order with `relabel`, as torchreid does for training); -1 ids skipped."""
    found = []
    for path in sorted(glob.glob(osp.join(dir_path, "*.jpg"))):
        pid, camid = map(int, NAME.search(osp.basename(path)).groups())
        if pid == -1:
            continue  # junk images, as in Market-1501
        found.append((path, pid, camid - 1))
    if relabel:
        labels = {pid: label for label, pid in enumerate(sorted({p for _, p, _ in found}))}
        found = [(path, labels[pid], camid) for path, pid, camid in found]
    return found


try:
    from torchreid.data import ImageDataset
except ImportError:  # read_folder alone, without torchreid
    ImageDataset = None

if ImageDataset is not None:
    class SynthReid(ImageDataset):
        dataset_dir = "synthreid"

        def __init__(self, root="", **kwargs):
            base = osp.join(osp.abspath(osp.expanduser(root)), self.dataset_dir)
            train = read_folder(osp.join(base, "bounding_box_train"), relabel=True)
            query = read_folder(osp.join(base, "query"))
            gallery = read_folder(osp.join(base, "bounding_box_test"))
            super().__init__(train, query, gallery, **kwargs)
