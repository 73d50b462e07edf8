"""DEFAULT with an approximate nearest-neighbour index (faiss HNSW) instead of the exact search: a benchmark
variant for issue 17 (what an approximate index costs in ROC-AUC at large n), not a shipped detector.

Needs ``pip install faiss-cpu``.  Used through ``deepad bench`` with the spec
``default_faiss:FaissDefault`` (benchmarks/ is on the path when running
``benchmarks/run_adbench.py``), e.g.::

    PYTHONPATH=src python benchmarks/run_adbench.py --setting oneclass --max-rows 100000 \\
        --datasets 8_celeba --detectors 'default_faiss:FaissDefault:{"ef_search": 256}' --out /tmp/faiss

The model is not saveable (the faiss index is not a scikit-learn object).
"""

from __future__ import annotations

import numpy as np

from deepad.detectors.ensemble import LocalGlobalEnsemble


class _HNSW:
    """The slice of ``NearestNeighbors`` that LocalGlobalEnsemble uses, over a faiss HNSW graph (L2)."""

    def __init__(self, ref: np.ndarray, m: int, ef_construction: int, ef_search: int):
        import faiss

        faiss.omp_set_num_threads(1)
        self.index = faiss.IndexHNSWFlat(ref.shape[1], m)
        self.index.hnsw.efConstruction = ef_construction
        self.index.add(np.ascontiguousarray(ref, dtype=np.float32))
        self.ef_search = ef_search
        self.ref = ref
        self.n_samples_fit_ = ref.shape[0]

    def kneighbors(self, X, n_neighbors: int):
        self.index.hnsw.efSearch = max(self.ef_search, n_neighbors + 1)
        if X is None:  # each reference row without itself
            d2, ind = self.index.search(np.ascontiguousarray(self.ref, dtype=np.float32), n_neighbors + 1)
            keep = ind != np.arange(len(self.ref))[:, None]
            keep[keep.all(axis=1), -1] = False
            d2, ind = d2[keep].reshape(len(self.ref), n_neighbors), ind[keep].reshape(len(self.ref), n_neighbors)
        else:
            d2, ind = self.index.search(np.ascontiguousarray(X, dtype=np.float32), n_neighbors)
        d2 = np.where(ind < 0, np.inf, d2)  # fewer than n_neighbors found: "far"
        return np.sqrt(np.maximum(d2.astype(np.float64), 0.0)), ind


class FaissDefault(LocalGlobalEnsemble):
    """LocalGlobalEnsemble whose kNN members search a faiss HNSW graph (Malkov & Yashunin, TPAMI 2020)."""

    def __init__(self, hnsw_m: int = 32, ef_construction: int = 80, ef_search: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search

    def get_params(self, deep=True):
        params = {k: getattr(self, k) for k in ("hnsw_m", "ef_construction", "ef_search")}
        return {**super().get_params(deep=deep), **params}

    def _neighbour_index(self, ref, k):
        return _HNSW(ref, self.hnsw_m, self.ef_construction, self.ef_search)
