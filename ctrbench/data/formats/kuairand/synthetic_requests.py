"""When the synthetic KuaiRand users act: requests (several exposures at one ``time_ms``) over ``DAYS`` days from
``START_MS``, with an evening peak, and the hour each request is logged under (``LOG_DELAY_MS`` late at most).
Shared by the generated logs' profiles (``synthetic``, ``synthetic_long``)."""

from __future__ import annotations

import numpy as np

EVENTS_SIGMA = 0.6  # log-normal spread of the rows per user
MEAN_REQUEST_SIZE = 4.0
START_MS = 1_649_347_200_000  # 2022-04-08 00:00 Beijing time (UTC+8)
START_DATE, DAYS = np.datetime64("2022-04-08"), 14
DATE_INTS = np.char.replace((START_DATE + np.arange(DAYS + 1)).astype(str), "-", "").astype(np.int64)  # +1: late
LOG_DELAY_MS = 20 * 60_000
_ACTIVITY = np.exp(0.9 * np.cos(2 * np.pi * (np.arange(24) - 21) / 24))  # requests per hour: evening peak
HOUR_CDF = np.cumsum(_ACTIVITY / _ACTIVITY.sum())


def zipf_cdf(rng: np.random.Generator, n: int, s: float) -> np.ndarray:
    """Cumulative Zipf(s) probabilities over ``n`` values, the popularity order seeded."""
    p = 1.0 / np.arange(1, n + 1) ** s
    return np.cumsum(p[rng.permutation(n)] / p.sum())


def draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def requests(rng: np.random.Generator, n_users: int, n_rows: int):
    """Rows per user, split into requests with times: (user [rows], request [rows], step [rows], offset ms from
    START_MS [requests], logged hour since START_DATE [requests]); a user's requests are consecutive and their
    times strictly increase."""
    weights = rng.lognormal(0.0, EVENTS_SIGMA, n_users)
    counts = 1 + rng.multinomial(n_rows - n_users, weights / weights.sum())
    user = np.repeat(np.arange(n_users), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    starts = rng.random(n_rows) < 1.0 / MEAN_REQUEST_SIZE
    starts[first] = True
    request = np.cumsum(starts) - 1
    step = request - request[first][user]  # index of the request within its user's
    request_user = user[starts]
    n = len(request_user)
    offset = rng.integers(0, DAYS, n) * 86_400_000 + draw(HOUR_CDF, rng.random(n)) * 3_600_000
    offset = np.sort(offset + rng.integers(0, 3_600_000, n) + request_user * (DAYS * 86_400_000))
    offset -= request_user * (DAYS * 86_400_000)  # sorted within each user
    while (tie := np.flatnonzero((request_user[1:] == request_user[:-1]) & (offset[1:] <= offset[:-1])) + 1).size:
        offset[tie] = offset[tie - 1] + 1
    logged_hour = (offset + rng.integers(0, LOG_DELAY_MS, n)) // 3_600_000
    return user, request, step, offset, logged_hour
