"""What a model file keeps of a fitted estimator, apart from how the file is written
(:mod:`numgru.io`): the sequence estimators' and the language model's fitted-state format,
the names of the arrays, and the checks of what a file holds against what a fit gives.

The estimators' ``_get_fitted_state()`` returns ``(fitted, arrays)`` (a JSON-able dict and a
dict of arrays) and ``_set_fitted_state(fitted, arrays, device)`` restores them; they build and
read those dicts with the functions here, and set their own attributes.

The sequence estimators' arrays: ``"gru{i}.{name}"`` (``"rnn{i}.{name}"`` for the RNN cells)
for recurrent layer ``i`` under PyTorch's ``state_dict`` names, ``head_coef`` (K, F) and
``head_intercept`` (K,), the standardisation (:data:`SCALING_ARRAYS`) and, with attention
pooling, :data:`ATTENTION_ARRAYS`; F is the top layer's output width, K the head's outputs.
"""

import math

import numpy as np

from ._validation import check_finite, check_float_array


# ---------------------------------------------------------------------------------------------
# The sequence estimators (GRURegressor, GRUClassifier)
# ---------------------------------------------------------------------------------------------

#: fitted attributes that a model file keeps (besides the network's arrays)
FITTED_ATTRIBUTES = ("n_features_in_", "n_outputs_", "n_iter_", "t_", "loss_", "loss_curve_",
                     "best_loss_", "validation_scores_", "best_validation_score_",
                     "out_activation_", "_input_kind", "_n_inputs", "_single_output",
                     "feature_names_in_")
#: those of them that predicting needs (a file must hold them)
FITTED_REQUIRED = ("n_features_in_", "n_outputs_", "_input_kind", "_n_inputs")
#: the file-name prefix of each cell's layer weights
CELL_FILE_PREFIX = {"gru": "gru", "rnn_tanh": "rnn", "rnn_relu": "rnn"}
#: file names of the attention pooling's arrays (attributes ``<name>_``)
ATTENTION_ARRAYS = ("attention_coef", "attention_intercept", "attention_vector")
#: file names of the regressor's linear skip (attributes ``<name>_``; :mod:`numgru._linear_skip`)
SKIP_ARRAYS = ("skip_coef", "skip_intercept")
#: file names of the standardisation (attributes ``<name>_``; targets: regressors only)
SCALING_ARRAYS = ("input_mean", "input_scale", "target_mean", "target_scale")


def network_arrays(layers, head_coef, head_intercept, scaling, attention, skip=None):
    """The network's arrays by file name.

    ``layers``: ``(cell, state_dict)`` of each recurrent layer, first to last; ``scaling``:
    name -> value of :data:`SCALING_ARRAYS` (None: not stored); ``attention``: name -> value
    of :data:`ATTENTION_ARRAYS` (empty without attention pooling); ``skip``: name -> value of
    :data:`SKIP_ARRAYS` (None or empty without a linear skip).
    """
    arrays = {}
    for i, (cell, state) in enumerate(layers):
        prefix = CELL_FILE_PREFIX[cell]
        for name, value in state.items():
            arrays[f"{prefix}{i}.{name}"] = value
    arrays["head_coef"] = head_coef
    arrays["head_intercept"] = head_intercept
    for name, value in scaling.items():
        if value is not None:
            arrays[name] = np.asarray(value, np.float64)
    arrays.update(attention)
    arrays.update(skip or {})
    return arrays


def check_recurrent_arrays(arrays, cell, n_inputs, sizes, D):
    """ValueError unless ``arrays`` hold the input and recurrent weight matrices of every
    layer of ``sizes`` (cell ``cell``, ``D`` directions, ``n_inputs`` inputs) in the shapes
    the parameters give. Checked before the network is built, so that sizes in a hostile file
    cannot make it allocate more than the file holds."""
    n_in = n_inputs
    prefix, G = CELL_FILE_PREFIX[cell], 3 if cell == "gru" else 1   # gate blocks
    for i, H in enumerate(sizes):
        for name, shape in ((f"{prefix}{i}.weight_ih_l0", (G * H, n_in)),
                            (f"{prefix}{i}.weight_hh_l0", (G * H, H))):
            if name not in arrays:
                raise ValueError(f"network array {name!r} is missing")
            if np.shape(arrays[name]) != shape:
                raise ValueError(f"network array {name!r} has shape "
                                 f"{np.shape(arrays[name])}, expected {shape}")
        n_in = D * H


def layer_arrays(arrays, cell, i):
    """Recurrent layer ``i``'s arrays under its ``state_dict`` names (file prefix removed)."""
    prefix = f"{CELL_FILE_PREFIX[cell]}{i}."
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def read_head(arrays, n_outputs, size_in, dtype):
    """``(head_coef (K, F), head_intercept (K,))`` from ``arrays``, checked: shapes, finite.
    KeyError for a missing one, ValueError for a wrong one."""
    coef = check_float_array(arrays["head_coef"], "head_coef", dtype)
    intercept = check_float_array(arrays["head_intercept"], "head_intercept", dtype)
    if coef.shape != (n_outputs, size_in):
        raise ValueError(f"head weights have shape {coef.shape}, expected "
                         f"{(n_outputs, size_in)}")
    if intercept.shape != (n_outputs,):
        raise ValueError(f"head bias has shape {intercept.shape}, expected {(n_outputs,)}")
    check_finite(coef, "head_coef")
    check_finite(intercept, "head_intercept")
    return coef, intercept


def read_scaling(arrays, sizes):
    """The standardisation as attribute name -> value, for each ``kind -> size`` of ``sizes``
    ("input", and "target" for a regressor): both of a pair or neither (a file from before
    standardisation: the identity, mean 0 and scale 1), finite, scales positive."""
    out = {}
    for kind, size in sizes.items():
        names = [f"{kind}_mean", f"{kind}_scale"]
        present = [n in arrays for n in names]
        if not any(present):
            out[names[0] + "_"] = np.zeros(size)
            out[names[1] + "_"] = np.ones(size)
            continue
        if not all(present):
            raise ValueError(f"network arrays {names} must both be present or both absent")
        for n in names:
            value = check_float_array(arrays[n], n, np.float64)
            if value.shape != (size,):
                raise ValueError(f"network array {n!r} has shape {value.shape}, expected "
                                 f"{(size,)}")
            check_finite(value, n)
            if n.endswith("scale") and not (value > 0).all():
                raise ValueError(f"network array {n!r} must be positive")
            out[n + "_"] = value
    return out


def read_attention(arrays, size_in, dtype):
    """The attention pooling's arrays as attribute name -> value, checked: present, shapes
    (the attention size A equals F = ``size_in``, the top layer's output width), finite."""
    shapes = {"attention_coef": (size_in, size_in), "attention_intercept": (size_in,),
              "attention_vector": (size_in,)}
    out = {}
    for name, shape in shapes.items():
        if name not in arrays:
            raise ValueError(f"network array {name!r} is missing (pooling='attention')")
        value = check_float_array(arrays[name], name, dtype)
        if value.shape != shape:
            raise ValueError(f"network array {name!r} has shape {value.shape}, "
                             f"expected {shape}")
        check_finite(value, name)
        out[name + "_"] = value
    return out


def read_skip(arrays, n_outputs, n_inputs, dtype):
    """The linear skip's arrays as attribute name -> value (with ``skip_steps_``), checked:
    both or neither present, ``skip_coef`` (K, k * n_inputs) with k >= 1, finite. Empty for a
    model without a skip."""
    present = [name for name in SKIP_ARRAYS if name in arrays]
    if not present:
        return {}
    if len(present) == 1:
        missing = (set(SKIP_ARRAYS) - set(present)).pop()
        raise ValueError(f"network array {missing!r} is missing (the file has {present[0]!r})")
    coef = check_float_array(arrays["skip_coef"], "skip_coef", dtype)
    intercept = check_float_array(arrays["skip_intercept"], "skip_intercept", dtype)
    if (coef.ndim != 2 or coef.shape[0] != n_outputs or coef.shape[1] < n_inputs
            or coef.shape[1] % n_inputs):
        raise ValueError(f"network array 'skip_coef' has shape {coef.shape}, expected "
                         f"({n_outputs}, k * {n_inputs}) for k >= 1 steps")
    if intercept.shape != (n_outputs,):
        raise ValueError(f"network array 'skip_intercept' has shape {intercept.shape}, "
                         f"expected {(n_outputs,)}")
    check_finite(coef, "skip_coef")
    check_finite(intercept, "skip_intercept")
    return {"skip_coef_": coef, "skip_intercept_": intercept,
            "skip_steps_": coef.shape[1] // n_inputs}


def storable_classes(classes):
    """A classifier's ``classes_`` as the array its file holds; TypeError for labels that
    only pickle could store (objects other than strings)."""
    classes = np.asarray(classes)
    if classes.dtype.kind == "O" and not all(isinstance(c, str) for c in classes):
        raise TypeError("class labels of mixed or object types cannot be saved without "
                        "pickle; use numbers or strings")
    return classes


def read_classes(arrays, n_outputs):
    """A classifier's ``classes`` from ``arrays``, checked: one per output, finite numbers or
    strings, sorted and unique (``LabelEncoder``'s order). KeyError for a missing one,
    ValueError for a wrong one."""
    classes = arrays["classes"]
    if classes.shape != (n_outputs,):
        raise ValueError(f"classes have shape {classes.shape}, expected ({n_outputs},)")
    if classes.dtype.kind not in "biufUSO" or (classes.dtype.kind == "f"
                                                and not np.isfinite(classes).all()):
        raise ValueError(f"classes must be finite numbers or strings, got {classes.dtype} "
                         f"values {classes.tolist()}")
    if not np.array_equal(np.unique(classes), classes):   # LabelEncoder's order
        raise ValueError(f"classes must be sorted and unique, got {classes.tolist()}")
    return classes


def check_fitted_values(fitted, out_activation):
    """ValueError unless the fitted attributes of a model file have the types and values a fit
    gives them (the network arrays are checked against them afterwards); ``out_activation`` is
    the estimator's ``out_activation_``."""
    def positive_int(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    for name in ("n_features_in_", "n_outputs_", "_n_inputs"):
        if not positive_int(fitted[name]):
            raise ValueError(f"fitted attribute {name} must be a positive integer, got "
                             f"{fitted[name]!r}")
    kind = fitted["_input_kind"]
    if kind not in ("3d", "2d", "ragged"):
        raise ValueError(f"fitted attribute _input_kind must be '3d', '2d' or 'ragged', got "
                         f"{kind!r}")
    if kind == "2d" and fitted["_n_inputs"] != 1:
        raise ValueError(f"a model fitted on 2-D X has one input per timestep, but _n_inputs is "
                         f"{fitted['_n_inputs']}")
    if kind != "2d" and fitted["n_features_in_"] != fitted["_n_inputs"]:
        raise ValueError(f"n_features_in_ ({fitted['n_features_in_']}) differs from _n_inputs "
                         f"({fitted['_n_inputs']})")
    if fitted["_dtype"] not in ("float32", "float64"):
        raise ValueError(f"fitted attribute _dtype must be 'float32' or 'float64', got "
                         f"{fitted['_dtype']!r}")
    if "_single_output" in fitted:
        if not isinstance(fitted["_single_output"], bool):
            raise ValueError(f"fitted attribute _single_output must be a boolean, got "
                             f"{fitted['_single_output']!r}")
        if fitted["_single_output"] and fitted["n_outputs_"] != 1:
            raise ValueError(f"_single_output is true but n_outputs_ is {fitted['n_outputs_']}")
    for name in ("n_iter_", "t_"):
        if name in fitted and not (type(fitted[name]) is int and fitted[name] >= 0):
            raise ValueError(f"fitted attribute {name} must be a non-negative integer, got "
                             f"{fitted[name]!r}")
    for name in ("loss_", "best_loss_", "best_validation_score_"):
        if name in fitted and not (fitted[name] is None or number(fitted[name])):
            raise ValueError(f"fitted attribute {name} must be a number, got {fitted[name]!r}")
    for name in ("loss_curve_", "validation_scores_"):
        value = fitted.get(name)
        if value is not None and not (isinstance(value, list) and all(map(number, value))):
            raise ValueError(f"fitted attribute {name} must be a list of numbers, got {value!r}")
    if "out_activation_" in fitted and not isinstance(fitted["out_activation_"], str):
        raise ValueError(f"fitted attribute out_activation_ must be a string, got "
                         f"{fitted['out_activation_']!r}")
    check_fitted_ranges(fitted, out_activation)


def check_fitted_ranges(fitted, out_activation):
    """ValueError unless the fitted values (of the right types) are ones a fit can give:
    the estimator's own output activation, losses >= 0 (``loss_`` NaN when no epoch finished,
    ``best_loss_`` inf before one), one loss per epoch, validation scores (accuracy or R^2)
    <= 1, at least one sample per epoch, and one string feature name per input feature."""
    def bad(name, what):
        raise ValueError(f"fitted attribute {name} must be {what}, got {fitted[name]!r}"[:300])

    if "out_activation_" in fitted and fitted["out_activation_"] != out_activation:
        bad("out_activation_", f"{out_activation!r} for this estimator")
    loss = fitted.get("loss_")
    if loss is not None and not (math.isnan(loss) or 0 <= loss < math.inf):
        bad("loss_", "a finite number >= 0 (or NaN when no epoch finished)")
    best = fitted.get("best_loss_")
    if best is not None and not best >= 0:
        bad("best_loss_", "a number >= 0 (inf before the first epoch)")
    curve = fitted.get("loss_curve_")
    if curve is not None:
        if not all(0 <= v < math.inf for v in curve):
            bad("loss_curve_", "a list of finite numbers >= 0")
        if "n_iter_" in fitted and len(curve) != fitted["n_iter_"]:
            bad("loss_curve_", f"one loss per epoch, n_iter_ = {fitted['n_iter_']}")
    scores = fitted.get("validation_scores_")
    if scores is not None and not all(-math.inf < v <= 1 for v in scores):
        bad("validation_scores_", "a list of finite scores <= 1 (accuracy or R^2)")
    best = fitted.get("best_validation_score_")
    if best is not None and not (-math.inf <= best <= 1):
        bad("best_validation_score_", "a score <= 1 (-inf before the first epoch)")
    if "t_" in fitted and "n_iter_" in fitted and fitted["t_"] < fitted["n_iter_"]:
        bad("t_", f"at least n_iter_ = {fitted['n_iter_']} (one sample or more per epoch)")
    names = fitted.get("feature_names_in_")
    if names is not None and not (isinstance(names, list) and all(isinstance(v, str) for v in names)
                                  and len(names) == fitted["n_features_in_"]):
        bad("feature_names_in_", f"a list of {fitted['n_features_in_']} strings (n_features_in_)")


# ---------------------------------------------------------------------------------------------
# The language model (GRULanguageModel)
# ---------------------------------------------------------------------------------------------

#: fitted attributes that a language model's file keeps (besides its arrays)
LM_FITTED_ATTRIBUTES = ("n_iter_", "loss_curve_", "validation_scores_", "best_validation_score_",
                        "loss_")


def check_lm_fitted_values(fitted):
    """ValueError unless a model file's fitted values are what a fit gives: ``n_iter_``
    epochs, one finite loss >= 0 per epoch (``loss_`` the last), validation scores (mean
    log-likelihoods per token: finite, <= 0) for none or every epoch, and
    ``best_validation_score_`` None or the best of them."""
    def bad(name, what):
        raise ValueError(f"fitted attribute {name} must be {what}, got {fitted.get(name)!r}"[:300])

    def numbers(v):
        return isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                           for x in v)

    n = fitted.get("n_iter_", 0)
    if type(n) is not int or n < 0:
        bad("n_iter_", "a non-negative integer")
    curve = fitted.get("loss_curve_", [])
    if not (numbers(curve) and len(curve) == n and all(0 <= x < math.inf for x in curve)):
        bad("loss_curve_", f"a list of {n} (n_iter_) finite losses >= 0")
    if "loss_" in fitted and not ((curve and fitted["loss_"] == curve[-1])
                                  or (not curve and fitted["loss_"] != fitted["loss_"])):
        bad("loss_", "the last entry of loss_curve_ (NaN before the first epoch)")
    scores = fitted.get("validation_scores_", [])
    if not (numbers(scores) and len(scores) in (0, n)
            and all(-math.inf < x <= 0 for x in scores)):
        bad("validation_scores_", f"a list of 0 or {n} (n_iter_) finite log-likelihoods <= 0")
    best = fitted.get("best_validation_score_")
    if best is not None and not (scores and best == max(scores)):
        bad("best_validation_score_", "None or the largest of validation_scores_")
