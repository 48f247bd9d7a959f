"""The documentation that ``GRURegressor`` and ``GRUClassifier`` share, written once.

Each class's docstring is composed from these paragraphs and its own (summary, output head,
classifier-only parameters and attributes, See Also, Examples) by
:func:`sequence_estimator_doc`; the methods' docstrings name the shared parameter entries by
marker (``{X}`` on a line of its own) and :func:`fill_doc` writes them in. numpydoc, doctest
and ``help()`` read the composed ``__doc__``, so they see every docstring whole.
"""


def _intro(head, mlp):
    return f"""\
    One GRU layer (or vanilla RNN layer: ``cell``) per entry of ``hidden_layer_sizes``, then a
    {head} on one feature vector per sequence (or per timestep with
    ``output="each_step"``), trained by backpropagation through time. Parameters mirror
    :class:`sklearn.neural_network.{mlp}` wherever one exists. ``X`` is a 3-D array
    (n_samples, n_timesteps, n_features), a list of 2-D arrays of different lengths, or a 2-D
    array of univariate sequences.

"""


# the parameters from hidden_layer_sizes to early_stopping, whose "auto" each class explains
PARAMETERS_NETWORK_AND_TRAINING = """\
    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(64,)
        Hidden size of each recurrent layer, first to last; one layer per entry, sizes may
        differ.

    cell : {"gru", "rnn_tanh", "rnn_relu"}, default="gru"
        The recurrent cell of every layer: the GRU (:class:`numgru.GRU`), or the vanilla
        (Elman) RNN ``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` with act tanh or relu
        (:class:`numgru.RNN`, ``torch.nn.RNN``).

    bidirectional : bool, default=False
        Give every recurrent layer a second, time-reversed direction; the layer's output is then the
        two directions' outputs concatenated (twice the size).

    dropout : float in [0, 1), default=0.0
        Dropout probability on the outputs of every recurrent layer but the last, in training only.

    residual : bool, default=False
        Residual connections (tensorflow/nmt's convention): every recurrent layer k >= 1
        whose input and output widths match (D * hidden_layer_sizes[k-1] ==
        D * hidden_layer_sizes[k]) outputs its input plus its recurrent output; its input is
        what the layer reads, layer k-1's output after dropout. Layer 0 never has one (its
        input is the data). ``ValueError`` at fit when no layer can have one (a single layer,
        or every size differs from the one before). See the user guide.

    layer_norm : bool, default=False
        Layer-normalised cells (Ba et al. 2016): a LayerNorm with learned gain and bias on the
        input projection and, separately, on the recurrent projection of every recurrent
        layer, over its gate pre-activations. Gains and LN biases are not penalised by
        ``alpha`` (like biases). Needs ``reset_after=True`` for ``cell="gru"`` (``ValueError``
        at fit). See the user guide.

    recurrent_dropout : float, default=0.0
        Keras's recurrent dropout: per sequence and training forward, masks on the state where
        it enters the recurrent product (one per gate), the same at every step, inverted
        scaling; never at prediction. Needs ``reset_after=True`` for ``cell="gru"``.

    reset_after : bool, default=True
        GRU gate convention: True is PyTorch's / cuDNN's (reset gate applied after the
        recurrent product), False is Cho et al. 2014's (Keras ``reset_after=False``). See the
        math page of the documentation. Ignored unless ``cell="gru"``.

    pooling : {"last", "mean", "attention"}, default="last"
        With ``output="last"``: the features the head reads: the last layer's output at the
        end of each sequence ("last": its final hidden state, plus the skip with
        ``residual``; the reverse direction's at step 0), the mean of the last layer's
        outputs over its valid steps ("mean"), or their attention-weighted sum ("attention"):
        ``u_t = tanh(W h_t + b)``, ``alpha = softmax_t(v . u_t)`` over the valid steps
        (padding gets 0), features ``sum_t alpha_t h_t``, with W (A, F), b (A,), v (A,) and
        the attention size A equal to the last layer's output width F = D *
        hidden_layer_sizes[-1]; W and v get the L2 penalty. See :meth:`attention_weights`.

    output : {"last", "each_step"}, default="last"
        "last": one target per sequence. "each_step": one target per timestep (sequence
        labelling, next-step prediction); ``y`` and the predictions then have a time axis.

    solver : {"adam", "rmsprop", "sgd"}, default="adam"
        The optimiser.

    alpha : float, default=1e-4
        Strength of the L2 penalty on the weight matrices (not the biases), as in
        ``MLPRegressor``.

    batch_size : int or "auto", default="auto"
        Sequences per minibatch; "auto" is ``n_samples // 16`` within [4, 32]: about 16
        optimizer steps per epoch on small data sets (a few dozen sequences train faster and
        better in more, smaller steps), Keras's 32 from 512 sequences on. scikit-learn's MLP
        uses 200. Batches group sequences of similar length.

    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Step-size schedule, for every solver: "constant"; "invscaling" ``lr =
        learning_rate_init / (t + 1) ** power_t`` with ``t`` the sequences seen; "adaptive"
        (reduce on plateau): divide the rate by 5 each time the stopping rule fires, and stop
        once it fires with the rate at 1/100 of ``learning_rate_init`` or below.

    learning_rate_init : float, default=1e-3
        Initial step size.

    power_t : float, default=0.5
        Exponent of the "invscaling" schedule.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training sequences).

    shuffle : bool, default=True
        Shuffle the sequences (and the length buckets) every epoch.

    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, batch shuffling, dropout masks and the early-stopping
        split. Pass an int for reproducible fits.

    tol : float, default=1e-4
        Minimum improvement that counts as progress: of the validation score (early
        stopping), or of the training loss averaged over the last ``n_iter_no_change`` epochs
        (absolute, as scikit-learn's).

    verbose : "auto" or int, default="auto"
        "auto": a progress line with the loss and an estimate of the time left, redrawn on
        a terminal (standard error) once a fit has run 3 s, nothing when the output is not a
        terminal (Keras's convention); 0 silent; 1 one line per epoch; 2 the progress line
        from the first epoch.

    warm_start : bool, default=False
        Continue from the previous fit's weights instead of reinitialising.

    momentum : float, default=0.9
        Momentum of ``solver="sgd"``.

    nesterovs_momentum : bool, default=True
        Nesterov momentum for ``solver="sgd"``.

    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the sequences, stop when the validation score has
        not improved by ``tol`` for ``n_iter_no_change`` epochs, and restore the weights of the
        best epoch. """

# the end of early_stopping: what "auto" does for each class
EARLY_STOPPING_AUTO_REGRESSOR = """\
"auto": on when the held-out part has at least 5 sequences (50 sequences
        at the default fraction), off below; a first fit with ``linear_skip="auto"`` (and
        ``output="last"``) holds out from 2 sequences, as the skip's ridge model is then a
        candidate for the best epoch, and below 5 refits the choice on all sequences (see
        ``linear_skip``; measured on forecasts: docs, training page).

"""

# the end of early_stopping: what "auto" does for each class
EARLY_STOPPING_AUTO_CLASSIFIER = """\
"auto" is off for the classifier (the training-loss rule reached the
        accuracy of 200 epochs on the quality benchmark; docs, training page); True turns it
        on.

"""

# the parameters from validation_fraction to standardize
PARAMETERS_DATA = """\
    validation_fraction : float, default=0.1
        Fraction of the training sequences held out with ``early_stopping=True``.

    beta_1 : float, default=0.9
        Adam's decay rate of the first-moment estimate.

    beta_2 : float, default=0.999
        Adam's decay rate of the second-moment estimate (RMSprop's ``rho``).

    epsilon : float, default=1e-8
        Numerical-stability term of Adam and RMSprop.

    n_iter_no_change : int, default=10
        Epochs in a row without an improvement of more than ``tol`` after which training stops
        (or, with ``learning_rate="adaptive"``, the rate is lowered). A loss that grows
        beyond 1000 times the best the fit reached, or becomes NaN or infinite, stops
        training with a ``RuntimeWarning`` and the best epoch's weights. scikit-learn's 10;
        with the "auto" batch size it stopped the quality benchmark's sets within 1 point of
        the accuracy of 200 epochs (docs: training).

    clip_grad_norm : float or None, default=1.0
        Rescale the gradient of each minibatch to at most this global L2 norm
        (``torch.nn.utils.clip_grad_norm_``); None for no clipping. Clipping keeps the loss
        spikes of recurrent training from ending a fit early (docs: training).

    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where the recurrent layers run. "cpu": the Numba CPU kernels. "cuda": an NVIDIA GPU; needs
        ``pip install "numgru[cuda]"`` and a working GPU, and ``fit`` raises ``RuntimeError``
        when there is none. "auto": the GPU when one is usable, the CPU otherwise.

    dtype : {"float32", "float64", "auto"}, default="float32"
        Compute dtype: float32 as PyTorch and Keras (as accurate on the quality benchmark and
        faster, see the training page of the documentation); "float64" for results equal to
        PyTorch's float64 to 1e-10; "auto": float32 for float32 input, float64 otherwise.

    standardize : bool, default=True
        Standardise every input feature (and a regressor's every target) with the mean and
        standard deviation of the training data, before the network sees them; predictions
        come back in the units of ``y``. The statistics are fitted attributes
        (``input_mean_``, ``input_scale_``, ``target_mean_``, ``target_scale_``), kept by
        ``save``; ``warm_start`` and ``partial_fit`` keep those of the first fit. False feeds
        the data as given (the loss is then in the units of ``y``).

"""

# the classifier's own parameter
CLASS_WEIGHT = """\
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss: ``{label: weight}``, "balanced" (inversely
        proportional to the class frequencies, as in scikit-learn) or None (all 1).

"""

# the classifier's own attribute (listed first)
CLASSES = """\
    classes_ : ndarray of shape (n_classes,)
        Class labels.

"""

# the attributes from loss_ to out_activation_
ATTRIBUTES_TRAINING = """\
    loss_ : float
        Training loss (including the L2 term) of the last epoch; with ``standardize`` a
        regressor's is that of the standardised targets.

    input_mean_ : ndarray of shape (n_features_per_timestep,)
        Mean of each input feature over all valid timesteps of the training sequences (0 when
        ``standardize=False``).

    input_scale_ : ndarray of shape (n_features_per_timestep,)
        Their standard deviation (1 for a constant feature, or when ``standardize=False``).

    best_loss_ : float
        Lowest training loss seen (without early stopping).

    loss_curve_ : list of float
        Training loss of every epoch.

    validation_scores_ : list of float or None
        Validation score of every epoch with ``early_stopping=True``, else None.

    best_validation_score_ : float or None
        Best validation score (early stopping), else None.

    n_iter_ : int
        Number of epochs run.

    t_ : int
        Number of training sequences seen.

    n_features_in_ : int
        Features per timestep of a 3-D or ragged ``X``; timesteps of a 2-D ``X``.

    n_outputs_ : int
        Number of outputs of the head.

    out_activation_ : str
        Output activation of the head.

"""

# the regressor's own parameter: where early stopping's held-out sequences come from
VALIDATION_HOLDOUT_REGRESSOR = """\
    validation_holdout : {"last", "random"}, default="last"
        Which sequences early stopping holds out: "last", the last ``validation_fraction`` of
        them in the order given (Keras's ``validation_split``); "random", a random draw
        (scikit-learn's MLP). Sliding windows of one series overlap their neighbours, so a
        random draw scores windows whose neighbours were trained on, while the last windows
        are scored as a forecast is, past the range trained on (measured on forecasts: docs,
        training page). Shuffle sequences that come sorted (by target, by class) before
        fitting, or use "random".

"""

# the regressor's own attributes
TARGET_SCALING = """\
    target_mean_ : ndarray of shape (n_outputs,)
        The targets' mean (0 when ``standardize=False``).

    target_scale_ : ndarray of shape (n_outputs,)
        The targets' standard deviation (1 when ``standardize=False``): predictions are
        ``network output * target_scale_ + target_mean_``.

"""

# the attributes from stack_ to attention_vector_
ATTRIBUTES_NETWORK = """\
    stack_ : numgru._stack.Stack
        The fitted recurrent layers as one engine stack (one layer of ``cell`` per entry of
        ``hidden_layer_sizes``, dropout between them) on the chosen device.

    layers_ : list of numgru.GRU or numgru.RNN
        The fitted recurrent layers, one per entry of ``hidden_layer_sizes``: one-layer
        ``numgru.GRU`` (``cell="gru"``) or ``numgru.RNN`` views of ``stack_`` that share its
        parameters.

    grus_ : list of numgru.GRU
        ``layers_`` when ``cell="gru"`` (absent for the RNN cells).

    head_coef_ : ndarray of shape (n_outputs, D * hidden_layer_sizes[-1])
        Weights of the linear head.

    head_intercept_ : ndarray of shape (n_outputs,)
        Bias of the linear head.

    attention_coef_ : ndarray of shape (F, F)
        W of the attention pooling (``pooling="attention"`` only; F = D *
        hidden_layer_sizes[-1], the attention size A equals F).

    attention_intercept_ : ndarray of shape (F,)
        b of the attention pooling (``pooling="attention"`` only).

    attention_vector_ : ndarray of shape (F,)
        v of the attention pooling (``pooling="attention"`` only).

"""


def sequence_estimator_doc(summary, *, head, mlp, early_stopping_auto, extra_parameters="",
                           first_attributes="", extra_attributes="", see_also_and_examples):
    """A sequence estimator's docstring: ``summary`` (one line), the shared introduction
    (``head``: what the output layer is; ``mlp``: the scikit-learn MLP the parameters mirror),
    the shared parameters with ``early_stopping_auto`` and ``extra_parameters`` (numpydoc
    paragraphs, indented by 4), the shared attributes with ``first_attributes`` before them and
    ``extra_attributes`` after ``out_activation_``, then ``see_also_and_examples``."""
    return (summary + "\n\n" + _intro(head, mlp) + PARAMETERS_NETWORK_AND_TRAINING
            + early_stopping_auto + PARAMETERS_DATA + extra_parameters
            + "    Attributes\n    ----------\n" + first_attributes + ATTRIBUTES_TRAINING
            + extra_attributes + ATTRIBUTES_NETWORK + see_also_and_examples)


# the methods' shared parameter entries, by the marker that stands for each ("{X}", a line of its
# own indented as the entry), written out as numpydoc entries of a method's "Parameters"
METHOD_PARAMETERS = {
    "X": """\
        X : array-like or list of array-like
            Sequences: an array of shape (n_samples, n_timesteps, n_features), a list of
            (n_timesteps_i, n_features) arrays of different lengths, or an array of shape
            (n_samples, n_timesteps) of univariate sequences.
""",
    "lengths": """\
        lengths : array-like of int of shape (n_samples,), default=None
            Valid lengths of right-padded sequences in a 3-D or 2-D ``X`` (the padding is
            ignored, as for a ragged list of the same sequences).
""",
    "sample_weight": """\
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sequence in the loss.
""",
    "score_lengths": """\
        lengths : array-like of int of shape (n_samples,), default=None
            Valid length of each sequence of a padded 3-D (or 2-D univariate) array, as for
            :meth:`fit` and :meth:`predict`; steps past it are ignored.
""",
    "score_sample_weight": """\
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sequence; with ``output="each_step"`` the weight of each of its
            timesteps.
""",
}


def fill_doc(method):
    """Decorator: write :data:`METHOD_PARAMETERS` into ``method``'s docstring in place of their
    markers (apply it below any decorator that copies the docstring)."""
    doc = method.__doc__
    for name, text in METHOD_PARAMETERS.items():
        doc = doc.replace("        {" + name + "}\n", text)
    method.__doc__ = doc
    return method
