"""The KuaiRand release's files and columns (Pure, 1K and 27K share them), as this reader takes them.

A release's ``data/`` directory holds (``FILES``; several files of a kind are read in name order):

- ``log_standard_*.csv`` (27K: ``_part1``/``_part2`` of each period) and, optionally, ``log_random_*.csv``: one
  exposure per line, 19 integer columns (``LOG_COLUMNS``), header first. ``time_ms`` is unix milliseconds;
  ``date``/``hourmin`` are Beijing time at hour granularity and sometimes disagree with it, so nothing here uses them.
- ``user_features_*.csv``: 31 columns (``USER_COLUMNS``); strings, ranges quoted when they hold a comma
  (``"[100,1k)"``), ``-124`` as a missing code (``is_live_streamer``), float columns with empty values.
- ``video_features_basic_*.csv``: 12 columns (``VIDEO_COLUMNS``); ``tag`` a quoted comma list (``"12,54,60"``),
  empty values in several columns, numbers written as floats (``87433.0``).
- ``video_features_statistic_*.csv``: ``video_id``, ``counts`` and 50 per-day averages (``STATISTIC_COLUMNS``); the
  real header spells ``follow_user_num1`` (the README says ``follow_user_num``).

Every file is read by header name, never by position.
"""

from __future__ import annotations

from ctrbench.data.formats.base import DirectoryFile

BEIJING_OFFSET_MS = 8 * 3600 * 1000  # days and hours of the split and of the `hour` feature are Beijing time
DAY_MS = 86_400_000

LOG_COLUMNS = (
    "user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
    "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "profile_stay_time", "comment_stay_time",
    "is_profile_enter", "is_rand", "tab",
)  # fmt: skip
# the 0/1 columns of the logs; the first eight are the tasks a dataset may choose
LABEL_COLUMNS = (
    "is_click", "is_like", "is_follow", "is_comment", "is_forward", "is_hate", "long_view", "is_profile_enter",
)  # fmt: skip
FLAG_COLUMNS = (*LABEL_COLUMNS, "is_rand")
# a behaviour (the name of its history) -> the label column that marks its events
BEHAVIOR_LABELS = {
    "click": "is_click", "like": "is_like", "follow": "is_follow", "comment": "is_comment", "forward": "is_forward",
    "hate": "is_hate", "long_view": "long_view", "profile_enter": "is_profile_enter",
}  # fmt: skip
LOG_KEYS = ("user_id", "video_id", "time_ms", "tab")  # what every sample needs besides its labels

USER_COLUMNS = (
    "user_id", "user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author", "follow_user_num",
    "follow_user_num_range", "fans_user_num", "fans_user_num_range", "friend_user_num", "friend_user_num_range",
    "register_days", "register_days_range", *(f"onehot_feat{i}" for i in range(18)),
)  # fmt: skip
# user features -> categorical ids. Tokens: every distinct string is a category. Codes: numbers (some written as
# floats, `4.0`) whose integer value is the category. The counts follow_user_num, fans_user_num, friend_user_num and
# register_days enter as the release's own buckets, their `_range` columns, and are not read themselves.
USER_TOKENS = (
    "user_active_degree", "follow_user_num_range", "fans_user_num_range", "friend_user_num_range",
    "register_days_range",
)  # fmt: skip
USER_CODES = ("is_lowactive_period", "is_live_streamer", "is_video_author", *(f"onehot_feat{i}" for i in range(18)))
USER_FEATURES = tuple(c for c in USER_COLUMNS if c in USER_TOKENS or c in USER_CODES)  # header order
USER_KINDS = {c: "token" if c in USER_TOKENS else "code" for c in USER_FEATURES}  # how sides.read_side reads them
MISSING_CODE = -124  # the release's missing value in the user codes (is_live_streamer): a missing id here

VIDEO_COLUMNS = (
    "video_id", "author_id", "video_type", "upload_dt", "upload_type", "visible_status", "video_duration",
    "server_width", "server_height", "music_id", "music_type", "tag",
)  # fmt: skip
# the video_features_basic columns read, and how (sides.read_side): raw ids and codes (whole numbers, some written as
# floats) and tokens (strings, the first of the tag list) -> categorical ids; video_duration -> quantile buckets
VIDEO_KINDS = {
    "author_id": "id", "music_id": "id", "video_type": "token", "upload_type": "token", "music_type": "code",
    "video_duration": "number", "tag": "first_token",
}  # fmt: skip
# the video-side categorical features of a sample, in this order; the history fields are chosen among them
VIDEO_FEATURES = ("video_id", "author_id", "music_id", "video_type", "upload_type", "music_type", "tag", "duration")

STATISTIC_COLUMNS = (
    "counts", "show_cnt", "show_user_num", "play_cnt", "play_user_num", "play_duration", "complete_play_cnt",
    "complete_play_user_num", "valid_play_cnt", "valid_play_user_num", "long_time_play_cnt",
    "long_time_play_user_num", "short_time_play_cnt", "short_time_play_user_num", "play_progress",
    "comment_stay_duration", "like_cnt", "like_user_num", "click_like_cnt", "double_click_cnt", "cancel_like_cnt",
    "cancel_like_user_num", "comment_cnt", "comment_user_num", "direct_comment_cnt", "reply_comment_cnt",
    "delete_comment_cnt", "delete_comment_user_num", "comment_like_cnt", "comment_like_user_num", "follow_cnt",
    "follow_user_num1", "cancel_follow_cnt", "cancel_follow_user_num", "share_cnt", "share_user_num", "download_cnt",
    "download_user_num", "report_cnt", "report_user_num", "reduce_similar_cnt", "reduce_similar_user_num",
    "collect_cnt", "collect_user_num", "cancel_collect_cnt", "cancel_collect_user_num", "direct_comment_user_num",
    "reply_comment_user_num", "share_all_cnt", "share_all_user_num", "outsite_share_all_cnt",
)  # fmt: skip

FILES = {
    "log_standard": DirectoryFile("log_standard_*.csv"),
    "log_random": DirectoryFile("log_random_*.csv", required=False),
    "user_features": DirectoryFile("user_features_*.csv"),
    "video_basic": DirectoryFile("video_features_basic_*.csv"),
    "video_statistic": DirectoryFile("video_features_statistic_*.csv"),
}

# bad rows by kind, over every file of a run (one max_bad_rows budget)
BAD_ROW_KINDS = ("field_count", "bad_integer", "bad_label", "bad_number", "duplicate_id")
FIELD_COUNT, BAD_INTEGER, BAD_LABEL, BAD_NUMBER, DUPLICATE_ID = range(len(BAD_ROW_KINDS))


class KuaiRandFormatError(ValueError):
    """A KuaiRand file that does not parse; the message names file, line, column and problem."""


__all__ = [
    "BAD_ROW_KINDS",
    "BEHAVIOR_LABELS",
    "BEIJING_OFFSET_MS",
    "DAY_MS",
    "FILES",
    "FLAG_COLUMNS",
    "LABEL_COLUMNS",
    "LOG_COLUMNS",
    "LOG_KEYS",
    "MISSING_CODE",
    "STATISTIC_COLUMNS",
    "USER_CODES",
    "USER_COLUMNS",
    "USER_FEATURES",
    "USER_KINDS",
    "USER_TOKENS",
    "VIDEO_COLUMNS",
    "VIDEO_FEATURES",
    "VIDEO_KINDS",
    "KuaiRandFormatError",
]
