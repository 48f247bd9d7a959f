"""Forecast the last year of the airline-passengers series and compare with seasonal naive."""
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from numgru import GRURegressor
from numgru.datasets import load_airline_passengers

months, y = load_airline_passengers()             # 144 monthly totals, 1949-01 .. 1960-12
horizon, window = 12, 24                          # forecast 1960 from 24 months of history
n_train = len(y) - horizon

# Model the yearly growth rate: the seasonal difference of log(passengers), standardised.
logy = np.log(y)
s = logy[12:] - logy[:-12]
train = s[: len(s) - horizon]
mu, sd = train.mean(), train.std()
z = (train - mu) / sd

# Sliding windows: a 2-D array (n_windows, window) is a batch of univariate sequences.
X = np.stack([z[i:i + window] for i in range(len(z) - window)]).astype(np.float32)
target = z[window:]

reg = GRURegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=60,
                   batch_size=32, n_iter_no_change=1000, random_state=0)
with warnings.catch_warnings():                   # a fixed epoch budget, on purpose
    warnings.simplefilter("ignore", ConvergenceWarning)
    reg.fit(X, target)

# Recursive 12-step forecast: feed each prediction back as the newest input.
hist = list(z)
for _ in range(horizon):
    window_in = np.array([hist[-window:]], dtype=np.float32)
    hist.append(float(reg.predict(window_in)[0]))
growth = np.array(hist[-horizon:]) * sd + mu
forecast = np.exp(logy[n_train - 12:n_train] + growth)

actual = y[n_train:]
seasonal_naive = y[n_train - 12:n_train]          # "same month last year"


def mape(pred):
    return 100 * np.mean(np.abs(pred - actual) / actual)


print(f"MAPE 1960: numgru GRU {mape(forecast):.1f} %, seasonal naive {mape(seasonal_naive):.1f} %")

t = np.arange(len(y))
fig, ax = plt.subplots()
ax.plot(t[-60:], y[-60:], color="k", lw=1.2, label="observed")
ax.plot(t[n_train:], forecast, "o-", ms=3, label=f"GRU forecast (MAPE {mape(forecast):.1f} %)")
ax.plot(t[n_train:], seasonal_naive, "s--", ms=3,
        label=f"seasonal naive (MAPE {mape(seasonal_naive):.1f} %)")
ticks = t[-60::12]
ax.set_xticks(ticks, [months[i] for i in ticks])
ax.set_ylabel("passengers (thousands)")
ax.set_title("Airline passengers: forecasting 1960 from 1949-1959")
ax.legend(loc="upper left")
