"""Forecast a whole year at once: SequenceScaler + sliding_windows + a multi-output GRU."""
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from numgru import GRURegressor
from numgru.datasets import load_airline_passengers
from numgru.preprocessing import SequenceScaler, sliding_windows

months, y = load_airline_passengers()            # 144 monthly totals, 1949-01 .. 1960-12
horizon, window = 12, 24                         # forecast all of 1960 from 24 months
logy = np.log(y)
growth = logy[12:] - logy[:-12]                  # yearly growth rate of each month
train = growth[:-horizon]                        # up to 1959-12

# Standardise with statistics of the training part only (a 2-D (1, T) array is one
# univariate sequence), then cut windows of 24 months, each with the 12 months after it.
scaler = SequenceScaler().fit(train[None, :])
z = scaler.transform(train[None, :])[0]
X, Y = sliding_windows(z, window=window, horizon=horizon)     # (n, 24, 1), (n, 12)

reg = GRURegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=80,
                   batch_size=16, n_iter_no_change=1000, random_state=0)
with warnings.catch_warnings():                  # a fixed epoch budget, on purpose
    warnings.simplefilter("ignore", ConvergenceWarning)
    reg.fit(X, Y)                                # 12 outputs: one per month ahead

# The last window (horizon=0 returns windows up to the series' end) -> 12 growth rates,
# back to the original units, then to passengers: log y(1960) = log y(1959) + growth.
last = sliding_windows(z, window=window, horizon=0)[0][-1:]
growth_1960 = scaler.inverse_transform(reg.predict(last))[0]
forecast = np.exp(logy[-24:-12] + growth_1960)
naive = y[-24:-12]                               # seasonal naive: the same month of 1959
actual = y[-12:]


def mape(pred):
    return 100 * np.mean(np.abs(pred - actual) / actual)


t = np.arange(len(y))
fig, ax = plt.subplots()
ax.plot(t[-48:], y[-48:], color="k", lw=1.2, label="observed")
ax.plot(t[-12:], forecast, "o-", ms=3,
        label=f"GRU, all 12 months at once (MAPE {mape(forecast):.1f} %)")
ax.plot(t[-12:], naive, "s--", ms=3, label=f"seasonal naive (MAPE {mape(naive):.1f} %)")
ticks = t[-48::12]
ax.set_xticks(ticks, [months[i] for i in ticks])
ax.set_ylabel("passengers (thousands)")
ax.set_title("Airline passengers: a direct 12-month forecast of 1960")
ax.legend(loc="upper left")
print(f"MAPE 1960: numgru GRU {mape(forecast):.1f} %, seasonal naive {mape(naive):.1f} %")
