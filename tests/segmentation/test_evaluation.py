import json
import math

import numpy as np
import pytest

from imaging.errors import ModelError
from imaging.volume import Volume
from segmentation.evaluation import (CaseScore, EvalCase, EvaluationReport, LabelScore,
                                     check_unseen_seeds, evaluate, false_graft, healthy_lesion,
                                     real_cases,
                                     score_case, score_labels, summarise)


def case_with(truth, true_mm3=None, labels=("cord", "lesion", "graft"), control=False):
    image = Volume(np.zeros(truth.shape, np.float32), np.diag([0.5, 0.5, 2.0, 1.0]),
                   {"contrast": "T2w"})
    voxel = image.voxel_volume_mm3
    if true_mm3 is None:
        true_mm3 = {"cord": float((truth > 0).sum()) * voxel, "lesion": float((truth == 2).sum())
                    * voxel, "graft": float((truth == 3).sum()) * voxel}
    return EvalCase("c", "phantom", image, truth, true_mm3, labels, control)


def test_perfect_prediction_scores_perfectly_and_cord_is_the_whole_region():
    truth = np.zeros((20, 20, 6), np.uint8)
    truth[5:15, 5:15] = 1
    truth[8:11, 8:11, 2:4] = 3
    case = case_with(truth)
    scores = score_labels(truth, case.true_mm3, case, case.image.spacing)
    assert scores["cord"].dice == 1.0 and scores["cord"].hd95_mm == 0.0
    assert scores["cord"].true_mm3 == pytest.approx(100 * 6 * 0.5)
    assert scores["graft"].volume_error_percent == 0.0
    assert not scores["lesion"].present and scores["lesion"].dice == 1.0


def test_a_shifted_graft_is_measured_in_mm():
    truth = np.zeros((30, 30, 6), np.uint8)
    truth[5:25, 5:25] = 1
    truth[10:16, 10:16, 2:4] = 3
    predicted = truth.copy()
    predicted[predicted == 3] = 1
    predicted[12:18, 10:16, 2:4] = 3            # 2 voxels = 1 mm along x
    case = case_with(truth)
    score = score_labels(predicted, case.true_mm3, case, case.image.spacing)["graft"]
    assert score.dice == pytest.approx(2 / 3)
    assert score.hd95_mm == pytest.approx(1.0)


def fake_score(method, dataset="phantom", graft_free=False, any_graft=False, control=False,
               dice=0.8, hd=math.inf):
    label = LabelScore(True, dice, hd, 10.0, 8.0, 25.0)
    return CaseScore("c", dataset, method, "T2w", control, graft_free, any_graft, 0.1,
                     {"cord": label, "graft": LabelScore(not graft_free, 0.5, 1.0, 1, 1, 0.0)})


def test_false_graft_counts_graft_free_scans_and_controls_separately():
    cases = [fake_score("model", graft_free=True, any_graft=True, control=True),
             fake_score("model", graft_free=True, any_graft=False, control=True),
             fake_score("model", graft_free=True, any_graft=True),
             fake_score("model")]
    row = false_graft(cases, "model")
    assert row["graft_free_scans"] == 3 and row["with_false_graft"] == 2
    assert row["rate"] == pytest.approx(2 / 3)
    assert row["control_rate"] == pytest.approx(0.5)


def test_summary_skips_absent_labels_and_undefined_distances():
    cases = [fake_score("model", dice=0.9, hd=2.0), fake_score("model", dice=0.7),
             fake_score("model", graft_free=True, dice=0.1, hd=3.0)]
    row = summarise(cases, "phantom", "model", "graft")
    assert row["n"] == 2 and row["n_volume"] == 3
    cord = summarise(cases, "phantom", "model", "cord")
    assert cord["n"] == 3 and cord["dice_median"] == pytest.approx(0.7)
    assert cord["hd95_mm_median"] == pytest.approx(2.5) and cord["hd95_undefined"] == 1


def test_report_json_has_no_infinity_and_the_table_lists_both_methods():
    report = EvaluationReport((fake_score("model"), fake_score("baseline"),
                               fake_score("model", graft_free=True, any_graft=True)), {"seed": 1})
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert '"hd95_mm": null' in text
    table = report.table()
    assert "model" in table and "baseline" in table
    assert "false graft (model): 1/1 graft-free scans" in table
    assert "false graft (baseline)" not in table      # it saw no graft-free scan


def test_a_real_scans_only_table_has_no_false_graft_line():
    report = EvaluationReport((fake_score("model", dataset="real"),
                               fake_score("baseline", dataset="real")), {"seed": 1})
    assert "false graft" not in report.table()


def test_training_seeds_are_refused():
    with pytest.raises(ModelError, match=r"seeds \[1001\] were used to train"):
        check_unseen_seeds({"phantom_train_seeds": [1000, 1001]}, range(1001, 1003))
    check_unseen_seeds({"phantom_train_seeds": [1000, 1001]}, range(10_000, 10_003))


def test_a_graft_without_majority_voxels_is_not_graft_free():
    truth = np.zeros((20, 20, 6), np.uint8)
    truth[5:15, 5:15] = 1
    case = case_with(truth, {"cord": 300.0, "lesion": 0.0, "graft": 2.5})
    score = score_case(case, "model", lambda: (truth, {"cord": 300.0, "lesion": 0.0,
                                                       "graft": 2.0}))
    assert not score.graft_free
    assert not score.scores["graft"].present
    assert score.scores["graft"].volume_error_percent == pytest.approx(-20.0)


def test_evaluate_end_to_end_on_one_phantom(threshold_locator, threshold_segmenter):
    seen = []
    report = evaluate(threshold_segmenter, threshold_locator, n_phantoms=1, seed=10_000,
                      sessions=2, real=False, progress=seen.append)
    methods = {c.method for c in report.cases}
    assert methods == {"model", "baseline"} and len(seen) == len(report.cases)
    baseline_session = [c for c in report.cases if c.case.startswith("seed 10000 ses-01")]
    assert baseline_session and all(c.graft_free for c in baseline_session)
    # the baseline finds the cord in its CSF ring on a clean phantom
    assert max(c.scores["cord"].dice for c in report.cases if c.method == "baseline") > 0.7
    json.dumps(report.to_dict(), allow_nan=False)


def test_real_held_out_scans_have_cord_truth():
    from tests.conftest import shared_path
    shared_path("gm-challenge-data")
    case = next(real_cases({}))
    assert case.dataset == "real" and case.labels == ("cord", "lesion", "graft")
    assert case.true_mm3["lesion"] == 0.0 == case.true_mm3["graft"]   # healthy volunteers
    assert case.image.meta["contrast"] == "T2starw"
    assert case.truth.shape == case.image.spatial_shape and case.truth.any()
    assert case.true_mm3["cord"] == pytest.approx(case.truth.sum() * case.image.voxel_volume_mm3)


def _real_score(method: str, cord_mm3: float, lesion_mm3: float) -> CaseScore:
    def label(predicted: float, true: float) -> LabelScore:
        return LabelScore(true > 0, 0.0, math.inf, predicted, true, 0.0)
    scores = {"cord": label(cord_mm3, cord_mm3), "lesion": label(lesion_mm3, 0.0),
              "graft": label(0.0, 0.0)}
    return CaseScore("r", "real", method, "T2starw", False, True, False, 0.1, scores)


def test_lesion_in_healthy_real_cords_is_reported_as_a_share_of_the_cord_region():
    cases = [_real_score("model", 1000.0, 300.0), _real_score("model", 1000.0, 100.0),
             _real_score("model", 1000.0, 0.0), _real_score("baseline", 1000.0, 500.0)]
    row = healthy_lesion(cases, "model")
    assert row["scans"] == 3 and row["lesion_share_percent_median"] == pytest.approx(10.0)
    assert row["lesion_share_percent_worst"] == pytest.approx(30.0)
    table = EvaluationReport(tuple(cases), {}).table()
    assert "lesion or graft in healthy real cords (model): median 10.0 %" in table
    assert "real             lesion" not in table   # no lesion truth: no Dice row
