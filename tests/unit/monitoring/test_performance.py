"""Performance figures checked against scikit-learn on the same data, the Wilson interval
against a hand computation, the calibration rule on miscalibrated and calibrated scores,
and the CBPE estimate against realised accuracy. pytest turns every warning into an error,
so each ``None`` case also proves no warning was raised."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics
from sklearn.isotonic import IsotonicRegression

from dockyard.monitoring.performance import (
    classification_performance,
    estimate_accuracy,
    regression_performance,
)
from dockyard.schema.calibration import (
    CALIBRATION_GAIN,
    CALIBRATION_MAX_POINTS,
    Calibration,
    expected_calibration_error,
    fit_calibration,
)
from dockyard.stats import wilson_interval


def strict_json(result: dict[str, Any]) -> dict[str, Any]:
    """The result after a JSON round trip that refuses NaN and infinity."""
    loaded: dict[str, Any] = json.loads(json.dumps(result, allow_nan=False))
    return loaded


def noisy_classifier(
    rng: np.random.Generator, classes: list[str], n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities that lean towards the label, and the argmax predictions."""
    truth = rng.integers(0, len(classes), n)
    logits = rng.normal(size=(n, len(classes)))
    logits[np.arange(n), truth] += 1.2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = np.array(classes)
    return names[truth], names[proba.argmax(axis=1)], proba


def sklearn_order(proba: np.ndarray, classes: list[str]) -> tuple[np.ndarray, list[str]]:
    """Probability columns reordered to the sorted classes that scikit-learn assumes."""
    order = np.argsort(classes)
    return proba[:, order], sorted(classes)


# classification


def test_binary_figures_equal_sklearn() -> None:
    classes = ["no", "yes"]
    labels, predictions, proba = noisy_classifier(np.random.default_rng(0), classes, 400)

    result = classification_performance(
        labels.tolist(), predictions.tolist(), probabilities=proba, classes=classes
    )

    assert result["average"] == "binary"
    assert result["accuracy"] == pytest.approx(metrics.accuracy_score(labels, predictions))
    for key, score in [
        ("precision", metrics.precision_score),
        ("recall", metrics.recall_score),
        ("f1", metrics.f1_score),
    ]:
        assert result[key] == pytest.approx(score(labels, predictions, pos_label="yes"))
    assert result["roc_auc"] == pytest.approx(metrics.roc_auc_score(labels == "yes", proba[:, 1]))
    assert result["log_loss"] == pytest.approx(metrics.log_loss(labels, proba, labels=classes))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predictions, labels=classes
    )
    for i, name in enumerate(classes):
        assert result["per_class"][name] == pytest.approx(
            {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]}
        )
    assert result["excluded_rows"] == 0
    assert strict_json(result) == result


def test_multiclass_figures_equal_sklearn_with_unsorted_classes() -> None:
    classes = ["versicolor", "setosa", "virginica"]
    labels, predictions, proba = noisy_classifier(np.random.default_rng(1), classes, 600)

    result = classification_performance(labels, predictions, probabilities=proba, classes=classes)

    assert result["average"] == "macro"
    assert result["accuracy"] == pytest.approx(metrics.accuracy_score(labels, predictions))
    for key, score in [
        ("precision", metrics.precision_score),
        ("recall", metrics.recall_score),
        ("f1", metrics.f1_score),
    ]:
        assert result[key] == pytest.approx(score(labels, predictions, average="macro"))
    sorted_proba, sorted_classes = sklearn_order(proba, classes)
    assert result["roc_auc"] == pytest.approx(
        metrics.roc_auc_score(labels, sorted_proba, multi_class="ovr", labels=sorted_classes)
    )
    assert result["log_loss"] == pytest.approx(metrics.log_loss(labels, sorted_proba))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predictions, labels=classes
    )
    assert list(result["per_class"]) == classes
    for i, name in enumerate(classes):
        assert result["per_class"][name] == pytest.approx(
            {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]}
        )


@pytest.mark.parametrize("seed", range(12))
def test_numpy_figures_equal_sklearn_with_ties_and_unknown_labels(seed: int) -> None:
    """Precision, recall, F1 and ROC AUC are computed without scikit-learn (its import
    costs a CLI command more than a second); they must equal its figures exactly, with
    coarse (tied) scores, classes never predicted or never seen, and foreign labels."""
    rng = np.random.default_rng(seed)
    classes = ["c", "a", "b", "d"][: 2 + seed % 3]
    n = int(rng.integers(5, 300))
    pool = [*classes, "zz"] if seed % 2 else classes
    labels = rng.choice(pool, n)
    predictions = rng.choice(classes[:-1] if seed % 4 == 3 else classes, n)
    proba = np.round(rng.dirichlet(np.ones(len(classes)), n), 1)  # ties on purpose
    proba /= proba.sum(axis=1, keepdims=True)
    result = classification_performance(labels, predictions, probabilities=proba, classes=classes)
    figures = metrics.precision_recall_fscore_support(
        labels, predictions, labels=classes, average=None, zero_division=np.nan
    )
    for i, name in enumerate(classes):
        for key, column in zip(("precision", "recall", "f1"), figures[:3], strict=True):
            expected = None if np.isnan(column[i]) else pytest.approx(float(column[i]))
            assert result["per_class"][name][key] == expected, (name, key)
        assert result["per_class"][name]["support"] == int(figures[3][i])
    known = np.isin(labels, classes)
    aucs = [
        metrics.roc_auc_score(labels[known] == name, proba[known, i])
        for i, name in enumerate(classes)
        if (i == 1 or len(classes) > 2) and 0 < (labels[known] == name).sum() < known.sum()
    ]
    assert result["roc_auc"] == (pytest.approx(float(np.mean(aucs))) if aucs else None)


def test_binary_probabilities_may_be_one_column_of_the_positive_class() -> None:
    classes = ["False", "True"]
    labels, predictions, proba = noisy_classifier(np.random.default_rng(2), classes, 200)

    both = classification_performance(labels, predictions, probabilities=proba, classes=classes)
    positive = classification_performance(
        labels, predictions, probabilities=proba[:, 1], classes=classes
    )

    for key in ("roc_auc", "log_loss"):
        assert positive.pop(key) == pytest.approx(both.pop(key))
    assert positive == both


def test_coverage_counts_every_logged_prediction() -> None:
    result = classification_performance(
        ["1", "0", "1", "1"], ["1", "0", "0", "1"], predictions_total=10
    )

    assert (result["rows"], result["labelled"], result["coverage"]) == (10, 4, 0.4)
    assert regression_performance([1.0, 2.0], [1.5, 2.0], predictions_total=8)["coverage"] == 0.25
    with pytest.raises(ValueError, match="only 3 predictions"):
        classification_performance(["1"] * 4, ["1"] * 4, predictions_total=3)


def test_accuracy_interval_is_wilson() -> None:
    labels = ["a"] * 100
    predictions = ["a"] * 81 + ["b"] * 19

    result = classification_performance(labels, predictions)

    z, n, p = 1.959963984540054, 100, 0.81
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert result["accuracy"] == 0.81
    assert result["accuracy_ci"] == pytest.approx([centre - half, centre + half])
    # the textbook case: no success in 10 trials gives [0, z²/(n + z²)] = [0, 0.2775]
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(0, 0) is None


def test_no_labelled_rows_gives_none_figures() -> None:
    result = classification_performance(
        [], [], probabilities=np.empty((0, 2)), classes=["0", "1"], predictions_total=25
    )

    assert (result["rows"], result["labelled"], result["coverage"]) == (25, 0, 0.0)
    for key in ("accuracy", "accuracy_ci", "precision", "recall", "f1", "roc_auc", "log_loss"):
        assert result[key] is None
    assert result["per_class"]["1"] == {
        "precision": None,
        "recall": None,
        "f1": None,
        "support": 0,
    }
    assert strict_json(result) == result
    assert classification_performance([], [])["coverage"] is None


def test_one_class_present_has_no_roc_auc_and_no_probabilities_no_log_loss() -> None:
    labels, predictions = ["1", "1", "1"], ["1", "0", "1"]

    with_proba = classification_performance(
        labels, predictions, probabilities=[0.9, 0.3, 0.8], classes=["0", "1"]
    )
    without = classification_performance(labels, predictions, classes=["0", "1"])

    assert with_proba["roc_auc"] is None
    assert with_proba["log_loss"] == pytest.approx(
        metrics.log_loss(labels, [0.9, 0.3, 0.8], labels=["0", "1"])
    )
    assert without["roc_auc"] is None
    assert without["log_loss"] is None
    # the negative class was predicted but never true: precision 0, recall undefined
    assert without["per_class"]["0"] == {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0}
    assert without["recall"] == pytest.approx(2 / 3)
    assert strict_json(with_proba) == with_proba


def test_undefined_ratios_are_none_and_left_out_of_the_macro_mean() -> None:
    classes = ["a", "b", "c", "d"]
    labels = ["a", "a", "b", "b", "c", "c"]
    predictions = ["a", "b", "b", "b", "a", "a"]  # c never predicted, d absent everywhere

    result = classification_performance(labels, predictions, classes=classes)

    assert result["per_class"]["c"]["precision"] is None
    assert result["per_class"]["d"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    for key, score in [
        ("precision", metrics.precision_score),
        ("recall", metrics.recall_score),
        ("f1", metrics.f1_score),
    ]:
        expected = score(labels, predictions, labels=classes, average="macro", zero_division=np.nan)
        assert result[key] == pytest.approx(expected)


def test_labels_outside_classes_are_wrong_and_left_out_of_probability_figures() -> None:
    classes = ["cat", "dog"]
    labels = ["cat", "dog", "bird", "dog", "cat", "bird"]
    predictions = ["cat", "dog", "dog", "cat", "cat", "cat"]
    proba = np.array([0.2, 0.7, 0.6, 0.4, 0.1, 0.3])  # P(dog)

    result = classification_performance(labels, predictions, probabilities=proba, classes=classes)

    known = np.array([label in classes for label in labels])
    kept = np.array(labels)[known]
    assert result["excluded_rows"] == 2
    assert result["accuracy"] == pytest.approx(3 / 6)
    # "dog" predicted twice, once for a bird: precision 1/2
    assert result["precision"] == pytest.approx(0.5)
    assert result["precision"] == pytest.approx(
        metrics.precision_score(labels, predictions, labels=["dog"], average="macro")
    )
    assert result["roc_auc"] == pytest.approx(metrics.roc_auc_score(kept == "dog", proba[known]))
    assert result["log_loss"] == pytest.approx(metrics.log_loss(kept, proba[known], labels=classes))


def test_classes_default_to_the_sorted_classes_seen() -> None:
    labels, predictions = ["True", "False", "True"], ["True", "True", "False"]

    result = classification_performance(labels, predictions)

    assert list(result["per_class"]) == ["False", "True"]
    assert result["average"] == "binary"
    assert result["precision"] == pytest.approx(
        metrics.precision_score(labels, predictions, pos_label="True")
    )


def test_malformed_classification_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="need classes"):
        classification_performance(["a"], ["a"], probabilities=[[1.0, 0.0]])
    with pytest.raises(ValueError, match="shape"):
        classification_performance(["a"], ["a"], probabilities=[[1.0, 0.0]], classes="abc")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classification_performance(["a"], ["a"], probabilities=[[1.5, -0.5]], classes="ab")
    with pytest.raises(ValueError, match="2 labels but 1 predictions"):
        classification_performance(["a", "b"], ["a"])


# regression


def test_regression_figures_equal_sklearn() -> None:
    rng = np.random.default_rng(3)
    labels = rng.normal(10, 3, 300)
    predictions = labels + rng.normal(0.5, 1.0, 300)

    result = regression_performance(labels, predictions.tolist())

    assert result["mae"] == pytest.approx(metrics.mean_absolute_error(labels, predictions))
    assert result["rmse"] == pytest.approx(metrics.root_mean_squared_error(labels, predictions))
    assert result["r2"] == pytest.approx(metrics.r2_score(labels, predictions))
    assert strict_json(result) == result


def test_mae_interval_is_the_normal_approximation() -> None:
    labels = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    predictions = np.array([1.5, 1.0, 3.0, 6.0, 5.5, 5.0])

    result = regression_performance(labels, predictions)

    errors = np.abs(predictions - labels)
    half = norm.ppf(0.975) * errors.std(ddof=1) / math.sqrt(errors.size)
    assert result["mae_ci"] == pytest.approx([errors.mean() - half, errors.mean() + half])
    # a wide interval stops at zero
    wide = regression_performance([0.0, 0.0], [0.0, 10.0])
    assert wide["mae_ci"][0] == 0.0


def test_regression_figures_that_cannot_be_computed_are_none() -> None:
    empty = regression_performance([], [], predictions_total=4)
    single = regression_performance([1.0], [2.0])
    constant = regression_performance([3.0, 3.0, 3.0], [2.0, 3.0, 4.0])
    overflow = regression_performance([0.0, 0.0], [1e200, -1e200])

    assert [empty[k] for k in ("mae", "mae_ci", "rmse", "r2")] == [None] * 4
    assert (single["mae"], single["mae_ci"], single["r2"]) == (1.0, None, None)
    assert constant["r2"] is None
    assert constant["mae"] == pytest.approx(2 / 3)
    assert (overflow["mae"], overflow["rmse"], overflow["r2"]) == (1e200, None, None)
    for result in (empty, single, constant, overflow):
        assert strict_json(result) == result


# calibration


def labelled_sample(seed: int, n: int, truth: Any = lambda s: s) -> tuple[np.ndarray, np.ndarray]:
    """Uniform scores and 0/1 labels drawn Bernoulli(truth(score))."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 1, n)
    return scores, (rng.uniform(size=n) < truth(scores)).astype(int)


def test_expected_calibration_error_by_hand() -> None:
    scores = np.array([0.05, 0.15, 0.12, 0.95, 1.0])
    labels = np.array([0, 1, 0, 1, 1])

    # bins [0, .1): gap .05 (1 row); [.1, .2): mean label .5 vs score .135 (2 rows);
    # [.9, 1]: mean label 1 vs score .975 (2 rows)
    expected = (1 * 0.05 + 2 * (0.5 - 0.135) + 2 * (1 - 0.975)) / 5
    assert expected_calibration_error(scores, labels) == pytest.approx(expected)
    assert expected_calibration_error(scores, labels.astype(bool), bins=1) == pytest.approx(
        abs(0.6 - scores.mean())
    )


def test_calibration_is_kept_when_it_lowers_the_error() -> None:
    scores, labels = labelled_sample(4, 4000, truth=lambda s: s**2)

    calibration = fit_calibration(scores, labels)

    assert calibration.calibrated
    assert calibration.error_before is not None
    assert calibration.error_after is not None
    assert calibration.error_after < CALIBRATION_GAIN * calibration.error_before
    fresh_scores, fresh_labels = labelled_sample(5, 20_000, truth=lambda s: s**2)
    raw = expected_calibration_error(fresh_scores, fresh_labels)
    fixed = expected_calibration_error(calibration.apply(fresh_scores), fresh_labels)
    assert raw > 0.1
    assert fixed < 0.03


def test_calibration_is_not_kept_for_calibrated_scores() -> None:
    scores, labels = labelled_sample(6, 4000)

    calibration = fit_calibration(scores, labels)

    assert not calibration.calibrated
    assert calibration.error_before is not None
    assert calibration.error_after is not None
    assert calibration.error_after >= CALIBRATION_GAIN * calibration.error_before
    grid = np.linspace(0, 1, 11)
    assert calibration.apply(grid) == pytest.approx(grid)


def test_too_few_reference_rows_give_the_identity() -> None:
    scores, labels = labelled_sample(7, 50, truth=lambda s: s**2)

    calibration = fit_calibration(scores, labels)

    assert not calibration.calibrated
    assert calibration.error_before == pytest.approx(expected_calibration_error(scores, labels))
    assert calibration.error_after is None
    assert not fit_calibration(np.full(500, 0.3), np.zeros(500)).calibrated  # one class


def test_calibration_round_trips_through_small_json() -> None:
    scores, labels = labelled_sample(8, 100_000, truth=lambda s: s**2)
    calibration = fit_calibration(scores, labels)

    text = json.dumps(calibration.to_dict(), allow_nan=False)
    restored = Calibration.from_dict(json.loads(text))

    assert restored == calibration
    assert len(calibration.x) <= CALIBRATION_MAX_POINTS
    assert len(text) < 10_000
    assert Calibration.from_dict(Calibration.identity().to_dict()) == Calibration.identity()


def test_stored_map_follows_the_isotonic_fit() -> None:
    scores, labels = labelled_sample(9, 20_000, truth=lambda s: s**2)
    isotonic = IsotonicRegression(out_of_bounds="clip").fit(scores, labels)

    calibration = fit_calibration(scores, labels)

    assert calibration.apply(scores) == pytest.approx(isotonic.predict(scores), abs=1e-6)


def test_apply_is_monotone_and_clipped() -> None:
    scores, labels = labelled_sample(10, 5000, truth=lambda s: 0.2 + 0.6 * s)
    calibration = fit_calibration(scores, labels)
    grid = np.linspace(-0.5, 1.5, 2001)

    calibrated = calibration.apply(grid)

    assert calibration.calibrated
    assert np.all(np.diff(calibrated) >= 0)
    assert calibrated.min() >= 0.0
    assert calibrated.max() <= 1.0
    assert calibration.apply([-0.5, 1.5]).tolist() == [calibration.y[0], calibration.y[-1]]


def test_malformed_calibrations_are_refused() -> None:
    with pytest.raises(ValueError, match="x must increase"):
        Calibration.from_dict({"x": [0.0, 0.5, 0.4], "y": [0.0, 0.5, 1.0], "calibrated": True})
    with pytest.raises(ValueError, match="x must increase and y must not decrease"):
        Calibration((0.0, 1.0), (0.6, 0.4), True)
    with pytest.raises(ValueError, match="unknown calibration method"):
        Calibration.from_dict({"method": "platt", "x": [0.0], "y": [0.0], "calibrated": True})
    with pytest.raises(ValueError, match="0/1"):
        fit_calibration([0.2, 0.4], [0, 2])


# estimated performance


def realised_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((scores >= 0.5) == labels.astype(bool)))


def test_estimate_matches_realised_accuracy_for_calibrated_scores() -> None:
    scores, labels = labelled_sample(11, 20_000)

    result = estimate_accuracy(scores)

    assert result["estimated_accuracy"] == pytest.approx(
        realised_accuracy(scores, labels), abs=0.02
    )


def test_reference_calibration_corrects_an_overconfident_model() -> None:
    def truth(s: np.ndarray) -> np.ndarray:
        return 0.2 + 0.6 * s  # the model claims more certainty than it has

    reference_scores, reference_labels = labelled_sample(12, 5000, truth)
    scores, labels = labelled_sample(13, 20_000, truth)
    calibration = fit_calibration(reference_scores, reference_labels)

    raw = estimate_accuracy(scores)
    corrected = estimate_accuracy(scores, calibration=calibration)

    realised = realised_accuracy(scores, labels)
    assert corrected["calibrated"]
    assert not raw["calibrated"]
    assert corrected["estimated_accuracy"] == pytest.approx(realised, abs=0.02)
    assert raw["estimated_accuracy"] - realised > 0.05


def test_estimate_judges_the_model_actual_decisions() -> None:
    scores = [0.9, 0.2, 0.6]

    by_threshold = estimate_accuracy(scores)
    by_decision = estimate_accuracy(scores, predicted_positive=[True, True, False])
    by_high_threshold = estimate_accuracy(scores, threshold=0.7)

    assert by_threshold["estimated_accuracy"] == pytest.approx((0.9 + 0.8 + 0.6) / 3)
    assert by_decision["estimated_accuracy"] == pytest.approx((0.9 + 0.2 + 0.4) / 3)
    assert by_high_threshold["estimated_accuracy"] == pytest.approx((0.9 + 0.8 + 0.4) / 3)


def test_estimate_is_labelled_as_an_estimate() -> None:
    result = estimate_accuracy(np.array([0.7, 0.1]))
    empty = estimate_accuracy([])

    assert result["task"] == "estimate"
    assert result["estimate"] is True
    assert result["method"] == "confidence-based (CBPE)"
    assert result["note"].startswith("Estimated without labels from the model's probabilities;")
    assert result["rows"] == 2
    assert (empty["rows"], empty["estimated_accuracy"]) == (0, None)
    assert strict_json(result) == result
    assert strict_json(empty) == empty
