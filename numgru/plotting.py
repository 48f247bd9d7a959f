"""Plotting helpers in the style of scikit-learn's ``*Display`` objects.

matplotlib is an optional dependency: it is imported only when something is drawn.
"""

import numpy as _np
from sklearn.utils.validation import check_is_fitted as _check_is_fitted

__all__ = ["AttentionDisplay", "LossCurveDisplay"]


def _check_matplotlib_support(caller_name):
    """Raise an ImportError naming matplotlib when it cannot be imported."""
    try:
        from sklearn.utils._optional_dependencies import check_matplotlib_support
    except ImportError:  # a scikit-learn without the private helper
        check_matplotlib_support = None
    if check_matplotlib_support is not None:
        check_matplotlib_support(caller_name)
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{caller_name} requires matplotlib. You can install matplotlib with "
                          "`pip install matplotlib`") from exc


class LossCurveDisplay:
    """Training-loss curve of a fitted numgru estimator, with its validation score if any.

    The training loss per epoch (``loss_curve_``) is drawn on the left y axis; when the
    estimator was fitted with ``early_stopping=True``, the validation score per epoch
    (``validation_scores_``: accuracy for ``GRUClassifier``, R^2 for ``GRURegressor``) is drawn
    on a twin y axis on the right.

    It is recommended to create a display with :meth:`from_estimator`; the constructor only
    stores the data. All attributes set by :meth:`plot` end with an underscore. matplotlib is
    needed to plot, not to create the object.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        Training loss at the end of each epoch.

    validation_scores : array-like of shape (n_epochs,), default=None
        Validation score at the end of each epoch, or None when there is none.

    estimator_name : str, default=None
        Name of the estimator, used in the legend. None shows no name.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The training-loss line.

    validation_line_ : matplotlib Line2D or None
        The validation-score line, None when there are no validation scores.

    lines_ : list of matplotlib Line2D
        ``[line_]`` or ``[line_, validation_line_]``.

    ax_ : matplotlib Axes
        Axes of the training loss.

    validation_ax_ : matplotlib Axes or None
        Twin axes (sharing the x axis of ``ax_``) of the validation score, or None.

    figure_ : matplotlib Figure
        Figure containing the plot.

    See Also
    --------
    LossCurveDisplay.from_estimator : Plot the curves of a fitted estimator.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from numgru import GRUClassifier
    >>> from numgru.plotting import LossCurveDisplay
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 5, 2))
    >>> y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    >>> clf = GRUClassifier(hidden_layer_sizes=(4,), max_iter=3, early_stopping=True,
    ...                     validation_fraction=0.25, random_state=0).fit(X, y)
    >>> disp = LossCurveDisplay.from_estimator(clf)
    >>> len(disp.lines_), disp.validation_ax_ is not None
    (2, True)

    A display can also be made from recorded numbers:

    >>> disp = LossCurveDisplay([0.9, 0.6, 0.5], validation_scores=[0.5, 0.7, 0.8])
    >>> disp = disp.plot()
    >>> [line.get_label() for line in disp.lines_]
    ['training loss', 'validation score']
    """

    def __init__(self, loss_curve, *, validation_scores=None, estimator_name=None):
        self.loss_curve = loss_curve
        self.validation_scores = validation_scores
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, name=None, validation_kwargs=None, legend=True, **kwargs):
        """Plot the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on. None creates a new figure and axes.

        name : str, default=None
            Name for the legend labels; None uses ``estimator_name``.

        validation_kwargs : dict, default=None
            Keyword arguments passed to ``Axes.plot`` for the validation-score line.

        legend : bool, default=True
            Whether to draw a legend (one legend for both lines).

        **kwargs : dict
            Keyword arguments passed to ``Axes.plot`` for the training-loss line.

        Returns
        -------
        display : LossCurveDisplay
            Object that stores the computed values (``self``).

        Raises
        ------
        ImportError
            If matplotlib is not installed.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from numgru.plotting import LossCurveDisplay
        >>> disp = LossCurveDisplay([1.0, 0.7, 0.6], estimator_name="GRU").plot(color="k")
        >>> disp.line_.get_label()
        'GRU training loss'
        """
        _check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        name = self.estimator_name if name is None else name
        prefix = f"{name} " if name else ""
        if ax is None:
            _, ax = plt.subplots()

        loss = _np.asarray(self.loss_curve, dtype=float).ravel()
        epochs = _np.arange(1, loss.size + 1)
        line_kwargs = {"label": f"{prefix}training loss", "color": "C0"}
        line_kwargs.update(kwargs)
        (self.line_,) = ax.plot(epochs, loss, **line_kwargs)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        self.lines_ = [self.line_]

        self.validation_ax_ = None
        self.validation_line_ = None
        if self.validation_scores is not None:
            scores = _np.asarray(self.validation_scores, dtype=float).ravel()
            vax = ax.twinx()
            v_kwargs = {"label": f"{prefix}validation score", "color": "C1"}
            v_kwargs.update(validation_kwargs or {})
            (self.validation_line_,) = vax.plot(_np.arange(1, scores.size + 1), scores,
                                                **v_kwargs)
            vax.set_ylabel("validation score")
            self.validation_ax_ = vax
            self.lines_.append(self.validation_line_)

        if legend:
            ax.legend(self.lines_, [line.get_label() for line in self.lines_], loc="best")

        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, name=None, validation_kwargs=None,
                       legend=True, **kwargs):
        """Plot the training loss (and validation score) of a fitted estimator.

        Parameters
        ----------
        estimator : GRUClassifier or GRURegressor
            A fitted estimator with ``loss_curve_`` (and ``validation_scores_``).

        ax : matplotlib Axes, default=None
            Axes to plot on. None creates a new figure and axes.

        name : str, default=None
            Name for the legend labels; None uses the estimator's class name.

        validation_kwargs : dict, default=None
            Keyword arguments passed to ``Axes.plot`` for the validation-score line.

        legend : bool, default=True
            Whether to draw a legend.

        **kwargs : dict
            Keyword arguments passed to ``Axes.plot`` for the training-loss line.

        Returns
        -------
        display : LossCurveDisplay
            The plotted display.

        Raises
        ------
        ImportError
            If matplotlib is not installed.
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import numpy as np
        >>> from numgru import GRURegressor
        >>> from numgru.plotting import LossCurveDisplay
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(30, 6, 1))
        >>> y = X[:, -1, 0]
        >>> reg = GRURegressor(hidden_layer_sizes=(4,), max_iter=3, early_stopping=False,
        ...                    random_state=0).fit(X, y)
        >>> disp = LossCurveDisplay.from_estimator(reg)
        >>> disp.line_.get_label(), disp.validation_line_ is None
        ('GRURegressor training loss', True)
        >>> len(disp.line_.get_xdata())
        3
        """
        _check_matplotlib_support(f"{cls.__name__}.from_estimator")
        _check_is_fitted(estimator, "loss_curve_")
        name = type(estimator).__name__ if name is None else name
        disp = cls(estimator.loss_curve_,
                   validation_scores=getattr(estimator, "validation_scores_", None),
                   estimator_name=name)
        return disp.plot(ax=ax, validation_kwargs=validation_kwargs, legend=legend, **kwargs)


class AttentionDisplay:
    """Attention weights of one sequence under a model with ``pooling="attention"``.

    The weights alpha_t (``attention_weights``, summing to 1 over the sequence's steps) are
    drawn as bars over the timesteps; when ``values`` are given, the sequence itself is drawn
    over them on a twin y axis on the right (one line per feature).

    It is recommended to create a display with :meth:`from_estimator`; the constructor only
    stores the data. All attributes set by :meth:`plot` end with an underscore. matplotlib is
    needed to plot, not to create the object.

    Parameters
    ----------
    attention_weights : array-like of shape (n_timesteps,)
        alpha over the timesteps of one sequence.

    values : array-like of shape (n_timesteps,) or (n_timesteps, n_features), default=None
        The sequence, drawn over the weights; None draws the weights only.

    estimator_name : str, default=None
        Name of the estimator, used in the title. None shows no title.

    Attributes
    ----------
    bars_ : matplotlib BarContainer
        The attention-weight bars.

    values_lines_ : list of matplotlib Line2D
        One line per feature of ``values`` (empty without values).

    ax_ : matplotlib Axes
        Axes of the weights.

    values_ax_ : matplotlib Axes or None
        Twin axes (sharing the x axis of ``ax_``) of the values, or None.

    figure_ : matplotlib Figure
        Figure containing the plot.

    See Also
    --------
    numgru.GRUClassifier.attention_weights : The weights of many sequences.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from numgru import GRURegressor
    >>> from numgru.plotting import AttentionDisplay
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 8, 1))
    >>> reg = GRURegressor(hidden_layer_sizes=(4,), pooling="attention", max_iter=3,
    ...                    random_state=0).fit(X, X[:, :, 0].max(axis=1))
    >>> disp = AttentionDisplay.from_estimator(reg, X[0])
    >>> len(disp.bars_), len(disp.values_lines_)
    (8, 1)
    """

    def __init__(self, attention_weights, *, values=None, estimator_name=None):
        self.attention_weights = attention_weights
        self.values = values
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, name=None, values_kwargs=None, **kwargs):
        """Plot the weights (and the values).

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on. None creates a new figure and axes.

        name : str, default=None
            Title; None uses ``estimator_name``.

        values_kwargs : dict, default=None
            Keyword arguments passed to ``Axes.plot`` for the value lines.

        **kwargs : dict
            Keyword arguments passed to ``Axes.bar`` for the weights.

        Returns
        -------
        display : AttentionDisplay
            Object that stores the computed values (``self``).

        Raises
        ------
        ImportError
            If matplotlib is not installed.
        ValueError
            If ``values`` does not have one row per timestep.
        """
        _check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        alpha = _np.asarray(self.attention_weights, dtype=float).ravel()
        steps = _np.arange(alpha.size)
        values = None
        if self.values is not None:
            values = _np.asarray(self.values, dtype=float)
            values = values.reshape(values.shape[0], -1) if values.ndim else values.reshape(1, 1)
            if values.shape[0] != alpha.size:
                raise ValueError(f"values have {values.shape[0]} timesteps but the attention "
                                 f"weights have {alpha.size}")
        if ax is None:
            _, ax = plt.subplots()
        bar_kwargs = {"color": "C0", "alpha": 0.6, "label": "attention weight"}
        bar_kwargs.update(kwargs)
        self.bars_ = ax.bar(steps, alpha, **bar_kwargs)
        ax.set_xlabel("timestep")
        ax.set_ylabel("attention weight")
        self.values_lines_ = []
        self.values_ax_ = None
        if values is not None:
            vax = ax.twinx()
            for j in range(values.shape[1]):
                line_kwargs = {"color": f"C{j + 1}", "marker": ".",
                               "label": "value" if values.shape[1] == 1 else f"feature {j}"}
                line_kwargs.update(values_kwargs or {})
                self.values_lines_.extend(vax.plot(steps, values[:, j], **line_kwargs))
            vax.set_ylabel("value")
            self.values_ax_ = vax
        name = self.estimator_name if name is None else name
        if name:
            ax.set_title(name)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, X, *, show_values=True, ax=None, name=None,
                       values_kwargs=None, **kwargs):
        """Plot the attention weights of one sequence under a fitted estimator.

        Parameters
        ----------
        estimator : GRUClassifier or GRURegressor
            Fitted with ``pooling="attention"``.

        X : array-like of shape (n_timesteps, n_features), or (n_timesteps,)
            One sequence ((n_timesteps,) for a model fitted on univariate 2-D ``X``).

        show_values : bool, default=True
            Draw the sequence over the weights.

        ax : matplotlib Axes, default=None
            Axes to plot on. None creates a new figure and axes.

        name : str, default=None
            Title; None uses the estimator's class name.

        values_kwargs : dict, default=None
            Keyword arguments passed to ``Axes.plot`` for the value lines.

        **kwargs : dict
            Keyword arguments passed to ``Axes.bar`` for the weights.

        Returns
        -------
        display : AttentionDisplay
            The plotted display.

        Raises
        ------
        ImportError
            If matplotlib is not installed.
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If the estimator does not pool with attention, or ``X`` is not one sequence.
        """
        _check_matplotlib_support(f"{cls.__name__}.from_estimator")
        _check_is_fitted(estimator, "stack_")
        seq = _np.asarray(X)
        if getattr(estimator, "_input_kind", None) == "2d":
            if seq.ndim != 1:
                raise ValueError(f"X must be one sequence of shape (n_timesteps,) for a model "
                                 f"fitted on univariate sequences, got shape {seq.shape}")
            alpha = estimator.attention_weights(seq[None, :])[0]
        else:
            if seq.ndim == 1:
                seq = seq[:, None]
            if seq.ndim != 2:
                raise ValueError(f"X must be one sequence of shape (n_timesteps, n_features), "
                                 f"got shape {seq.shape}")
            alpha = estimator.attention_weights([seq])[0]
        name = type(estimator).__name__ if name is None else name
        disp = cls(alpha, values=seq if show_values else None, estimator_name=name)
        return disp.plot(ax=ax, values_kwargs=values_kwargs, **kwargs)
