"""Quality numbers for the pipeline: 2-D mask IoU / accuracy, image PSNR, and mesh Chamfer distance / F-score."""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree


def _confusion(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) of two same-shaped masks; any non-zero value counts as foreground."""
    pred = np.asarray(pred).astype(bool)
    gt = np.asarray(gt).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: prediction {pred.shape}, ground truth {gt.shape}")
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred & ~gt))
    fn = int(np.count_nonzero(~pred & gt))
    return tp, fp, fn, pred.size - tp - fp - fn


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """TP / (TP + FP + FN); two empty masks agree perfectly, so their IoU is 1."""
    tp, fp, fn, _ = _confusion(pred, gt)
    union = tp + fp + fn
    return 1.0 if union == 0 else tp / union


def mask_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """(TP + TN) / number of pixels."""
    tp, fp, fn, tn = _confusion(pred, gt)
    return (tp + tn) / (tp + fp + fn + tn)


def psnr(pred: np.ndarray, gt: np.ndarray, max_val: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, 10·log10(max_val² / MSE); identical images give inf."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"image shapes differ: prediction {pred.shape}, ground truth {gt.shape}")
    mse = float(np.mean((pred - gt) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(max_val**2 / mse))


def mesh_distances(
    pred: trimesh.Trimesh,
    gt: trimesh.Trimesh,
    threshold: float,
    n_points: int = 20000,
    seed: int = 0,
) -> dict[str, float]:
    """Compare two surfaces through n_points samples drawn (with a fixed seed) uniformly over each one's area.

    - ``chamfer``: mean of the two directed mean nearest-neighbour distances, ½·(mean d(pred→gt) + mean d(gt→pred)),
      in world units (not squared).
    - ``precision``: fraction of pred samples within ``threshold`` of a gt sample; ``recall``: the converse;
      ``fscore``: their harmonic mean.
    Distances are to the other surface's *samples*, so they overestimate the point-to-surface distance by roughly the
    sample spacing (≈ ½·sqrt(area / n_points)); raise n_points when that matters.
    An empty prediction scores chamfer = inf and precision = recall = fscore = 0.
    """
    if len(gt.faces) == 0 or gt.area <= 0:
        raise ValueError("the ground-truth mesh has no surface to compare against")
    if len(pred.faces) == 0 or pred.area <= 0:
        return {"chamfer": float("inf"), "precision": 0.0, "recall": 0.0, "fscore": 0.0}

    pred_points, _ = trimesh.sample.sample_surface(pred, n_points, seed=seed)
    gt_points, _ = trimesh.sample.sample_surface(gt, n_points, seed=seed)
    pred_to_gt, _ = cKDTree(gt_points).query(pred_points)
    gt_to_pred, _ = cKDTree(pred_points).query(gt_points)

    precision = float(np.mean(pred_to_gt <= threshold))
    recall = float(np.mean(gt_to_pred <= threshold))
    fscore = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "chamfer": float(0.5 * (pred_to_gt.mean() + gt_to_pred.mean())),
        "precision": precision,
        "recall": recall,
        "fscore": float(fscore),
    }
