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
    - ``normal_consistency``: mean |cos| between the face normals of each sample and of its nearest sample on the other
      surface, both ways (1 = the surfaces are parallel everywhere).
    Distances are to the other surface's *samples*, so they overestimate the point-to-surface distance by roughly the
    sample spacing (≈ ½·sqrt(area / n_points)); raise n_points when that matters.
    An empty prediction scores chamfer = inf and precision = recall = fscore = 0.
    """
    if len(gt.faces) == 0 or gt.area <= 0:
        raise ValueError("the ground-truth mesh has no surface to compare against")
    if len(pred.faces) == 0 or pred.area <= 0:
        return {"chamfer": float("inf"), "precision": 0.0, "recall": 0.0, "fscore": 0.0, "normal_consistency": 0.0}

    pred_points, pred_faces = trimesh.sample.sample_surface(pred, n_points, seed=seed)
    gt_points, gt_faces = trimesh.sample.sample_surface(gt, n_points, seed=seed)
    pred_to_gt, nearest_gt = cKDTree(gt_points).query(pred_points)
    gt_to_pred, nearest_pred = cKDTree(pred_points).query(gt_points)

    precision = float(np.mean(pred_to_gt <= threshold))
    recall = float(np.mean(gt_to_pred <= threshold))
    fscore = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    # |cos| between each sample's face normal and its nearest neighbour's: orientation-free (a mesh may wind inward)
    pred_normals, gt_normals = pred.face_normals[pred_faces], gt.face_normals[gt_faces]
    forward = np.abs(np.sum(pred_normals * gt_normals[nearest_gt], axis=1))
    backward = np.abs(np.sum(gt_normals * pred_normals[nearest_pred], axis=1))
    return {
        "chamfer": float(0.5 * (pred_to_gt.mean() + gt_to_pred.mean())),
        "precision": precision,
        "recall": recall,
        "fscore": float(fscore),
        "normal_consistency": float(0.5 * (forward.mean() + backward.mean())),
    }


def connected_parts(mesh: trimesh.Trimesh) -> int:
    """Pieces of the mesh that share no edge (floaters and specks count; 0 for an empty mesh)."""
    if len(mesh.faces) == 0:
        return 0
    return len(trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(len(mesh.faces)), min_len=1))
