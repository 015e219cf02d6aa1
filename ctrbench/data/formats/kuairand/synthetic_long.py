"""Seeded KuaiRand logs with a long-range planted signal (synthetic profile ``long_history``).

The same files, layout and quirks as the default profile (``synthetic``: feature files, requests sharing a
``time_ms``, late ``date``/``hourmin``), but few users with long logs (``EVENTS_PER_USER`` rows each on average)
and a click that depends on what the user clicked long ago. Each user's requests are simulated in time order;
the state is the sequence of authors the user clicked, oldest first. A request's video is, with probability
``P_RETURN`` (once the user has more than ``RETURN_GAP`` clicks), a video of a *returning* author: the author of
one of the user's clicks before the most recent ``RETURN_GAP``, drawn uniformly among them, unless that author
was also clicked within the last ``RETURN_GAP`` clicks (then, as otherwise, a popularity draw). With ``k`` =
[the video's author is among the authors of all the user's earlier clicks] and ``e ~ N(0, 1)``:

    z_click = B_CLICK + b_u + 0.6 q_v + W_KNOWN k + NOISE_WEIGHT e

so for a returning exposure the evidence lies at least ``RETURN_GAP`` (100) clicks back: a model that reads the
most recent 50 clicks cannot see it, one that reads 500 can. Other labels: like = click and U < P_LIKE;
long view ~ Bernoulli(sigmoid(LONG_VIEW_BIAS + 1.5 click - 0.9 d_v)); the rarer ones as the default profile's
``MINOR_LABELS``. Events of one request never inform each other (a click enters the state after its request).
"""

from __future__ import annotations

import itertools

import numpy as np

from ctrbench.data.formats.kuairand.synthetic import (
    LABELS,
    MINOR_LABELS,
    TAB_P,
    TABS,
    KuaiRandLatents,
    LogProfile,
    log_columns,
    sigmoid,
)
from ctrbench.data.formats.kuairand.synthetic_requests import DAYS, draw, requests

EVENTS_PER_USER = 600
RETURN_GAP, P_RETURN = 100, 0.4
B_CLICK, W_KNOWN, NOISE_WEIGHT = -1.5, 3.0, 0.6
P_LIKE, LONG_VIEW_BIAS = 0.1, -1.0


def _returning_authors(rng, clicked: np.ndarray, n_clicks: np.ndarray) -> np.ndarray:
    """Per user of the step: a returning author (see the module docstring) or -1. ``clicked [n, width]`` holds the
    users' clicked authors oldest first, ``n_clicks [n]`` how many."""
    n = len(n_clicks)
    older = n_clicks - RETURN_GAP  # clicks before the most recent RETURN_GAP
    eligible = (older > 0) & (rng.random(n) < P_RETURN)
    pick = (rng.random(n) * np.maximum(older, 1)).astype(np.int64)
    author = np.where(eligible, clicked[np.arange(n), pick], -1)
    recent = older[:, None].clip(min=0) + np.arange(RETURN_GAP)  # [n, RETURN_GAP] the latest clicks' slots
    in_recent = (clicked[np.arange(n)[:, None], recent.clip(max=clicked.shape[1] - 1)] == author[:, None]).any(axis=1)
    return np.where(in_recent, -1, author)


def simulate_long_log(lat: KuaiRandLatents, rng: np.random.Generator, user_start: int, n_users: int, n_rows: int):
    """Log rows of users ``user_start ..+ n_users`` (``log_columns``), ``n_rows`` in all, user-major and time-ordered."""
    user, request, step, offset, logged_hour = requests(rng, n_users, n_rows)
    tab = TABS[rng.choice(len(TABS), len(offset), p=TAB_P)]
    video = np.empty(n_rows, np.int64)
    labels = np.zeros((len(LABELS), n_rows), np.int64)
    width = int(np.bincount(user, minlength=n_users).max()) + 1
    clicked = np.full((n_users, width), -1, np.int64)  # the authors each user clicked, oldest first
    n_clicks = np.zeros(n_users, np.int64)
    known = np.zeros((n_users, lat.sizes["authors"]), bool)  # k: authors of the user's earlier clicks
    by_step = np.argsort(step, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(step))])
    for lo, hi in itertools.pairwise(bounds):
        rows = by_step[lo:hi]  # each user's request number `step`: the exposures of one request per user
        u, n = user[rows], hi - lo
        returning = _returning_authors(rng, clicked[u], n_clicks[u])
        author = np.maximum(returning, 0)
        pick = lat.author_offset[author] + (rng.random(n) * lat.author_size[author]).astype(np.int64)
        v = np.where(returning >= 0, lat.author_videos[pick], draw(lat.video_popularity, rng.random(n)))
        a = lat.video_author[v]
        z = B_CLICK + lat.user_bias[user_start + u] + 0.6 * lat.video_quality[v] + W_KNOWN * known[u, a]
        click = rng.random(n) < sigmoid(z + NOISE_WEIGHT * rng.standard_normal(n))
        like = click & (rng.random(n) < P_LIKE)
        long_view = rng.random(n) < sigmoid(LONG_VIEW_BIAS + 1.5 * click - 0.9 * lat.duration_z[v])
        drivers = {"is_click": click, "is_like": like, "quality": lat.video_quality[v]}
        minor = np.stack([b + sum(w * drivers[k] for k, w in ws.items()) for b, ws in MINOR_LABELS.values()])
        video[rows], labels[:3, rows] = v, (click, like, long_view)
        labels[3:, rows] = rng.random((len(MINOR_LABELS), n)) < sigmoid(minor)
        # the request's clicks enter the state after it; a user's exposures of one request are contiguous in rows
        cu, ca = u[click], a[click]
        rank = np.arange(len(cu)) - np.searchsorted(cu, cu, side="left")
        clicked[cu, n_clicks[cu] + rank] = ca
        np.add.at(n_clicks, cu, 1)
        known[cu, ca] = True
    return log_columns(lat, rng, user_start + user, video, labels, tab, request, offset, logged_hour)


def _planted(lat: KuaiRandLatents) -> dict:
    return {
        "profile": "long_history",
        "z_click": "B_CLICK + b_u + 0.6 q_v + W_KNOWN [author among the user's earlier clicks] + NOISE_WEIGHT e",
        "b_click": B_CLICK,
        "w_known": W_KNOWN,
        "noise_weight": NOISE_WEIGHT,
        "return_gap_clicks": RETURN_GAP,
        "p_return": P_RETURN,
        "p_like_given_click": P_LIKE,
        "long_view_bias": LONG_VIEW_BIAS,
        "user_bias_sd": float(np.std(lat.user_bias)) if len(lat.user_bias) > 1 else 0.0,
        "days": DAYS,
    }


LONG_HISTORY = LogProfile(simulate_long_log, EVENTS_PER_USER, _planted)

__all__ = ["LONG_HISTORY", "simulate_long_log"]
