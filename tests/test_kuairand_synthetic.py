"""The synthetic KuaiRand-Pure directory: determinism, the real layout and quirks, and planted multi-task signals.

The header constants below are the first lines of the real files, copied verbatim from the samples listed in
the project's data provenance:
- ``REAL_USER_HEADER``: Applied-Machine-Learning-Lab/KuaiSim: dataset/kuairand/kuairand-Pure/data/
  user_features_pure.csv, commit b40f8856640a119702fa6278cc934ee0fc78a873 (KuaiRand is CC BY-SA 4.0);
- ``REAL_VIDEO_BASIC_HEADER``: the same repository and commit, .../video_features_basic_pure.csv;
- ``REAL_VIDEO_STATISTIC_HEADER``: ShiningBrightLike/Recommendation_KuaiRand: KuaiRand-Pure/data/
  video_features_statistic_pure.csv, commit d942c83ddb0164e49d06d2db498b87c858bfeca5 (it spells
  ``follow_user_num1``);
- ``REAL_LOG_HEADER``: the 19 log columns as the provenance notes list them for the full release, with the real
  Pure row ``REAL_LOG_ROW`` from a public description of the release (no public sample file holds all 19).
"""

from __future__ import annotations

import csv
import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ctrbench.data.formats.kuairand import synthetic
from ctrbench.data.formats.kuairand import synthetic_features as features
from ctrbench.data.formats.kuairand.synthetic import LOG_FILE
from ctrbench.data.formats.kuairand.synthetic_features import USER_FILE, VIDEO_BASIC_FILE, VIDEO_STATISTIC_FILE
from ctrbench.data.formats.kuairand.synthetic_writer import write_synthetic_kuairand

REAL_USER_HEADER = (
    "user_id,user_active_degree,is_lowactive_period,is_live_streamer,is_video_author,follow_user_num,"
    "follow_user_num_range,fans_user_num,fans_user_num_range,friend_user_num,friend_user_num_range,"
    "register_days,register_days_range,onehot_feat0,onehot_feat1,onehot_feat2,onehot_feat3,onehot_feat4,"
    "onehot_feat5,onehot_feat6,onehot_feat7,onehot_feat8,onehot_feat9,onehot_feat10,onehot_feat11,"
    "onehot_feat12,onehot_feat13,onehot_feat14,onehot_feat15,onehot_feat16,onehot_feat17"
)
REAL_VIDEO_BASIC_HEADER = (
    "video_id,author_id,video_type,upload_dt,upload_type,visible_status,video_duration,server_width,"
    "server_height,music_id,music_type,tag"
)
REAL_VIDEO_STATISTIC_HEADER = (
    "video_id,counts,show_cnt,show_user_num,play_cnt,play_user_num,play_duration,complete_play_cnt,"
    "complete_play_user_num,valid_play_cnt,valid_play_user_num,long_time_play_cnt,"
    "long_time_play_user_num,short_time_play_cnt,short_time_play_user_num,play_progress,"
    "comment_stay_duration,like_cnt,like_user_num,click_like_cnt,double_click_cnt,cancel_like_cnt,"
    "cancel_like_user_num,comment_cnt,comment_user_num,direct_comment_cnt,reply_comment_cnt,"
    "delete_comment_cnt,delete_comment_user_num,comment_like_cnt,comment_like_user_num,follow_cnt,"
    "follow_user_num1,cancel_follow_cnt,cancel_follow_user_num,share_cnt,share_user_num,download_cnt,"
    "download_user_num,report_cnt,report_user_num,reduce_similar_cnt,reduce_similar_user_num,collect_cnt,"
    "collect_user_num,cancel_collect_cnt,cancel_collect_user_num,direct_comment_user_num,"
    "reply_comment_user_num,share_all_cnt,share_all_user_num,outsite_share_all_cnt"
)
REAL_LOG_HEADER = (
    "user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,long_view,"
    "play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab"
)
REAL_LOG_ROW = "3,1071,20220408,1600,1649408076860,1,0,0,0,0,0,1,175045,87433,0,0,0,0,1"
ROWS = 40_000
HOUR_MS = 3_600_000
BEIJING_MS = 8 * HOUR_MS


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    directory = tmp_path_factory.mktemp("kuairand") / "data"
    facts = write_synthetic_kuairand(directory, ROWS, seed=0)
    return directory, facts


@pytest.fixture(scope="module")
def tables(generated):
    directory, _ = generated
    log = pd.read_csv(directory / LOG_FILE)
    users = pd.read_csv(directory / USER_FILE, dtype=str, keep_default_na=False)
    basic = pd.read_csv(directory / VIDEO_BASIC_FILE, dtype=str, keep_default_na=False)
    statistic = pd.read_csv(directory / VIDEO_STATISTIC_FILE, dtype=str, keep_default_na=False)
    return log, users, basic, statistic


def _csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_same_rows_and_seed_same_bytes_other_seed_other_bytes(tmp_path):
    names = (LOG_FILE, USER_FILE, VIDEO_BASIC_FILE, VIDEO_STATISTIC_FILE)
    for label, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_synthetic_kuairand(tmp_path / label, 3000, seed=seed)
    a, b, c = ({n: (tmp_path / label / n).read_bytes() for n in names} for label in "abc")
    assert a == b
    assert all(a[n] != c[n] for n in names)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(names)  # nothing partial beside them


def test_headers_and_file_names_are_the_real_ones(generated):
    directory, _ = generated
    assert REAL_LOG_ROW.count(",") == REAL_LOG_HEADER.count(",") == 18
    expected = {
        LOG_FILE: REAL_LOG_HEADER,
        USER_FILE: REAL_USER_HEADER,
        VIDEO_BASIC_FILE: REAL_VIDEO_BASIC_HEADER,
        VIDEO_STATISTIC_FILE: REAL_VIDEO_STATISTIC_HEADER,
    }
    assert (LOG_FILE, USER_FILE) == ("log_standard_4_08_to_4_21_pure.csv", "user_features_pure.csv")
    assert (VIDEO_BASIC_FILE, VIDEO_STATISTIC_FILE) == (
        "video_features_basic_pure.csv",
        "video_features_statistic_pure.csv",
    )
    widths = {LOG_FILE: 19, USER_FILE: 31, VIDEO_BASIC_FILE: 12, VIDEO_STATISTIC_FILE: 52}
    for name, header in expected.items():
        raw = (directory / name).read_bytes()
        assert raw.startswith(header.encode() + b"\n") and raw.endswith(b"\n") and b"\r" not in raw
        assert {len(row) for row in _csv_rows(directory / name)} == {widths[name]}


def test_feature_files_write_values_in_the_real_styles(generated, tables):
    directory, _ = generated
    _, users, basic, statistic = tables
    user_text = (directory / USER_FILE).read_text()
    assert re.search(r',"\(\d+,\d+\]",', user_text) and re.search(r',"\[\d+,\d+[kw]?\)",', user_text)
    assert set(users["is_live_streamer"]) == {"-124", "0", "1"}
    assert "" in set(users["onehot_feat4"]) and users["onehot_feat4"].str.fullmatch(r"\d\.0|").all()
    for j in range(12, 18):
        assert set(users[f"onehot_feat{j}"]) <= {"0.0", "1.0"}
    follow = users["follow_user_num"].astype(int)
    bucket = users["follow_user_num_range"]
    assert (bucket[follow == 0] == "0").all() and (bucket[follow > 500] == "500+").all()
    assert (bucket[(follow > 0) & (follow <= 10)] == "(0,10]").all()
    days = users["register_days"].astype(int)
    assert (users["register_days_range"][days > 730] == "730+").all() and (days >= 15).all()

    basic_text = (directory / VIDEO_BASIC_FILE).read_text()
    assert re.search(r',"\d+(,\d+)+"\n', basic_text)  # multi-valued tag, quoted
    assert basic["video_duration"].str.fullmatch(r"\d+\.0|").all() and (basic["video_duration"] == "").any()
    for column in ("server_width", "server_height", "visible_status"):
        assert basic[column].str.fullmatch(r"\d+\.0").all()
    assert (basic["music_type"] == "").any() and (basic["tag"] == "").any() and (basic["music_id"] == "0").any()
    assert basic["upload_dt"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert set(basic["video_type"]) == {"NORMAL", "AD"}

    values = statistic.drop(columns=["video_id", "counts"]).to_numpy().ravel()
    assert pd.Series(values).str.fullmatch(r"\d+(\.\d+)?").all()  # plain decimals, no exponent
    assert (values == "0").any() and not pd.Series(values).str.endswith(".0").any()  # integral values bare
    assert statistic["counts"].str.fullmatch(r"\d+").all()


def test_log_quirks_requests_hours_and_absent_entities(generated, tables):
    _, facts = generated
    log, users, basic, statistic = tables
    assert len(log) == ROWS == facts["rows"]
    assert list(log.dtypes.unique()) == [np.dtype("int64")]
    for label in synthetic.LABELS:
        assert set(log[label]) <= {0, 1}
    assert (log["is_rand"] == 0).all()
    # user-major, time-ordered; one request = one (user, time_ms), several videos each
    assert (np.diff(log["user_id"]) >= 0).all()
    assert (log.groupby("user_id")["time_ms"].diff().dropna() >= 0).all()
    sizes = log.groupby(["user_id", "time_ms"]).size()
    assert len(sizes) == facts["requests"] and sizes.max() >= 8 and (sizes > 1).mean() > 0.5
    assert set(log.drop_duplicates(["user_id", "time_ms"]).groupby(["user_id", "time_ms"]).size()) == {1}
    assert log.groupby(["user_id", "time_ms"])["tab"].nunique().max() == 1
    # date/hourmin: Beijing hour of time_ms, or the hour after it (late rows), at hour granularity
    beijing = pd.to_datetime(log["time_ms"] + BEIJING_MS, unit="ms")
    logged = pd.to_datetime(log["date"].astype(str), format="%Y%m%d") + pd.to_timedelta(log["hourmin"] // 100, "h")
    lag = (logged - beijing.dt.floor("h")) // pd.Timedelta(hours=1)
    assert (log["hourmin"] % 100 == 0).all() and set(lag) == {0, 1}
    assert (lag == 1).sum() == facts["late_rows"] and 0.05 < facts["late_rows"] / ROWS < 0.3
    assert ((lag == 1) & (log["date"] != beijing.dt.strftime("%Y%m%d").astype(int))).any()  # late past midnight
    assert beijing.min() >= pd.Timestamp("2022-04-08") and beijing.max() < pd.Timestamp("2022-04-22")
    # play time agrees with long view
    threshold = np.minimum(log["duration_ms"], synthetic.LONG_VIEW_MS)
    assert ((log["play_time_ms"] >= threshold) == (log["long_view"] == 1)).all()
    # a few users and videos of the log are missing from the feature files
    missing_users = set(log["user_id"]) - set(users["user_id"].astype(int))
    missing_basic = set(log["video_id"]) - set(basic["video_id"].astype(int))
    missing_statistic = set(log["video_id"]) - set(statistic["video_id"].astype(int))
    assert len(missing_users) == facts["absent"]["users"] > 0
    assert len(missing_basic) == facts["absent"]["videos_basic"] > 0
    assert len(missing_statistic) == facts["absent"]["videos_statistic"] > 0
    assert len(missing_basic & missing_statistic) == facts["absent"]["videos_both"] > 0
    assert len(missing_users) < 0.05 * log["user_id"].nunique()


def test_rates_and_facts(generated, tables):
    _, facts = generated
    log = tables[0]
    rates = facts["rates"]
    assert rates == {label: log[label].sum() / ROWS for label in synthetic.LABELS}
    assert 0.3 < rates["is_click"] < 0.4 and 0.02 < rates["is_like"] < 0.06 and 0.2 < rates["long_view"] < 0.3
    assert 0 < rates["is_hate"] < rates["is_follow"] < rates["is_profile_enter"] < rates["is_like"]
    assert facts["users"] == log["user_id"].nunique() == ROWS // synthetic.EVENTS_PER_USER
    assert facts["files"][LOG_FILE]["rows"] == ROWS
    assert facts["files"][USER_FILE]["rows"] == facts["users"] - facts["absent"]["users"]
    assert np.array(facts["planted"]["interaction"]).shape == (len(synthetic.USER_GROUP_P), facts["tags"])


def test_chunks_join_into_one_complete_log(tmp_path, monkeypatch):
    """Small chunks exercise the chunk boundaries: exact row count, every user once, contiguous ids."""
    monkeypatch.setattr(synthetic, "CHUNK_USERS", 7)
    monkeypatch.setattr(features, "CHUNK_ENTITIES", 50)
    facts = write_synthetic_kuairand(tmp_path, 2000, seed=1)
    log = pd.read_csv(tmp_path / LOG_FILE)
    assert len(log) == 2000 and (np.diff(log["user_id"]) >= 0).all()
    assert set(log["user_id"]) == set(range(facts["users"]))
    videos = pd.read_csv(tmp_path / VIDEO_BASIC_FILE)["video_id"]
    assert (np.diff(videos) > 0).all() and len(videos) == facts["files"][VIDEO_BASIC_FILE]["rows"]


def test_rows_must_be_positive_and_a_failed_log_leaves_no_log(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="rows must be >= 1"):
        write_synthetic_kuairand(tmp_path, 0)

    def fail(*args):
        raise RuntimeError("interrupted")

    failing = dataclasses.replace(synthetic.MULTITASK, simulate=fail)
    with pytest.raises(RuntimeError):
        write_synthetic_kuairand(tmp_path / "d", 500, profile=failing)
    assert not (tmp_path / "d" / LOG_FILE).exists()
    assert not [p for p in (tmp_path / "d").iterdir() if "partial" in p.name]


def test_task_logits_are_the_equations_of_the_docstring():
    lat = synthetic.make_latents(5000, seed=2)
    rng = np.random.default_rng(0)
    n = 400
    user, video = rng.integers(0, lat.sizes["users"], n), rng.integers(0, lat.sizes["videos"], n)
    tab, hour, e = rng.choice([0, 1, 2, 4, 6], n), rng.integers(0, 24, n), rng.standard_normal(n)
    clicks, likes = rng.integers(0, 6, n), rng.integers(0, 3, n)
    liked_author, viewed_author = rng.random(n) < 0.5, rng.random(n) < 0.5
    z = synthetic._task_logits(lat, user, video, tab, hour, e, clicks, likes, liked_author, viewed_author)
    b, q, d = lat.user_bias[user], lat.video_quality[video], lat.duration_z[video]
    x = lat.interaction[lat.user_group[user], lat.video_tag[video]]
    y = lat.long_interaction[lat.user_group[user], lat.video_tag[video]]
    tab_effect = pd.Series({0: 0.3, 1: -0.6, 2: 0.2, 4: 0.0, 6: -0.3})[tab].to_numpy()
    hour_effect = 0.4 * np.cos(2 * np.pi * (hour - 13) / 24)
    click = b + 0.6 * q + 1.5 * x - 0.3 * d + tab_effect + hour_effect + 0.5 * np.log1p(clicks) + 0.6 * e
    like = 0.5 * q + 1.0 * x + 1.0 * np.log1p(likes) + 1.0 * liked_author + 0.6 * e
    long_view = 0.5 * b + 0.4 * q - 1.2 * x + 1.2 * y - 0.9 * d + 0.4 * np.log1p(clicks) + 0.8 * viewed_author + 0.6 * e
    np.testing.assert_allclose(z, np.stack([click, like, long_view]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d, (np.log(lat.video_duration_ms) - np.log(30_000))[video] / 0.9, atol=1e-3)
    for table in (lat.interaction, lat.long_interaction):  # rank 2 of random signs: A C^T / sqrt(2)
        np.testing.assert_allclose(np.unique(table), [-np.sqrt(2), 0, np.sqrt(2)], atol=1e-12)
        assert np.linalg.matrix_rank(table) == 2
    assert lat.biases[1] < lat.biases[2] < lat.biases[0]


def _earlier(log: pd.DataFrame, key: str, label: str) -> np.ndarray:
    """Per row: the user's rows with the same ``key`` and ``label`` 1 at an earlier time_ms (never the same)."""
    counts = log.groupby(["user_id", key, "time_ms"])[label].sum().rename("now").reset_index()
    counts["before"] = counts.groupby(["user_id", key])["now"].cumsum() - counts["now"]
    return log[["user_id", key, "time_ms"]].merge(counts, how="left")["before"].to_numpy()


@pytest.fixture(scope="module")
def signal_features(generated, tables):
    """Features a model could build from the raw files, with the planted interaction table from the facts."""
    _, facts = generated
    log, users, basic, statistic = tables
    users = users.assign(user_id=users["user_id"].astype(int), group=users["onehot_feat1"].astype(int))
    basic = basic.assign(
        video_id=basic["video_id"].astype(int),
        tag0=pd.to_numeric(basic["tag"].str.split(",").str[0], errors="coerce").fillna(-1).astype(int),
    )
    statistic = statistic.assign(video_id=statistic["video_id"].astype(int))
    df = log.merge(users[["user_id", "group"]], how="left").merge(basic[["video_id", "author_id", "tag0"]], how="left")
    df = df.merge(statistic[["video_id", "like_cnt", "play_cnt"]], how="left")
    df["tag0"], df["author_id"] = df["tag0"].fillna(-1).astype(int), df["author_id"].fillna("")
    known = df["group"].notna() & (df["tag0"] >= 0)
    for column, key in (("cross", "interaction"), ("long_cross", "long_interaction")):
        table = np.array(facts["planted"][key])
        df[column] = np.where(known, table[df["group"].fillna(0).astype(int), df["tag0"].clip(0)], 0.0)
    like_rate = np.log((df["like_cnt"].astype(float) + 0.1) / (df["play_cnt"].astype(float) + 1.0))
    df["like_rate"] = like_rate.fillna(like_rate.mean())
    df["log_duration"] = np.log(df["duration_ms"])
    hour = (df["time_ms"] + BEIJING_MS) // HOUR_MS % 24
    df["hour_cos"], df["hour_sin"] = np.cos(2 * np.pi * hour / 24), np.sin(2 * np.pi * hour / 24)
    for tab in synthetic.TABS:
        df[f"tab{tab}"] = (df["tab"] == tab).astype(float)
    df["clicks_of_tag"] = np.log1p(_earlier(df, "tag0", "is_click"))
    df["likes_of_tag"] = np.log1p(_earlier(df, "tag0", "is_like"))
    df["liked_author"] = (_earlier(df, "author_id", "is_like") > 0).astype(float)
    df["long_viewed_author"] = (_earlier(df, "author_id", "long_view") > 0).astype(float)
    return df


def _auc(df: pd.DataFrame, columns: list[str], label: str) -> float:
    """Fit on even user ids, score on odd ones."""
    train = (df["user_id"] % 2 == 0).to_numpy()
    x = df[columns].to_numpy(float)
    x = (x - x[train].mean(axis=0)) / (x[train].std(axis=0) + 1e-9)  # standardised: lbfgs converges fast
    model = LogisticRegression(max_iter=1000).fit(x[train], df.loc[train, label])
    return roc_auc_score(df.loc[~train, label], model.decision_function(x[~train]))


def test_each_task_is_learnable_from_the_files(signal_features):
    df = signal_features
    context = ["hour_cos", "hour_sin"] + [f"tab{t}" for t in synthetic.TABS]
    click = _auc(df, ["cross", "like_rate", "log_duration", "clicks_of_tag", *context], "is_click")
    like = _auc(df, ["cross", "like_rate", "likes_of_tag", "liked_author"], "is_like")
    long_view = _auc(
        df, ["cross", "long_cross", "like_rate", "log_duration", "clicks_of_tag", "long_viewed_author"], "long_view"
    )
    assert click > 0.68 and like > 0.78 and long_view > 0.7, (click, like, long_view)


def test_histories_carry_signal_beyond_the_static_features(signal_features):
    df = signal_features
    like_static = _auc(df, ["cross", "like_rate"], "is_like")
    like_history = _auc(df, ["cross", "like_rate", "likes_of_tag", "liked_author"], "is_like")
    assert like_history > like_static + 0.01, (like_static, like_history)
    long_static = _auc(df, ["like_rate", "log_duration"], "long_view")
    long_history = _auc(df, ["like_rate", "log_duration", "clicks_of_tag", "long_viewed_author"], "long_view")
    assert long_history > long_static + 0.005, (long_static, long_history)
    click_static = _auc(df, ["cross", "like_rate", "log_duration"], "is_click")
    click_history = _auc(df, ["cross", "like_rate", "log_duration", "clicks_of_tag"], "is_click")
    assert click_history > click_static + 0.005, (click_static, click_history)


def test_tasks_are_related_but_not_the_same(signal_features):
    """Shared terms move several tasks; each task also has a term of its own that leaves the others alone."""
    df = signal_features
    context = ["hour_cos", "hour_sin"] + [f"tab{t}" for t in synthetic.TABS]
    assert _auc(df, context, "is_click") > 0.56 and _auc(df, context, "is_like") < 0.53  # click only

    def auc(feature: pd.Series, label: str) -> float:
        return roc_auc_score(df[label], feature)

    # duration: long view and click; the interaction: like and click (other tasks see them only second-hand)
    shorter, cross = -df["log_duration"], df["cross"]
    assert auc(shorter, "long_view") > 0.65 and auc(shorter, "is_click") > 0.53 > auc(shorter, "is_like") - 0.03
    assert auc(cross, "is_like") > 0.65 and auc(cross, "is_click") > 0.56 > auc(cross, "long_view") + 0.03
    assert auc(df["liked_author"], "long_view") < auc(df["liked_author"], "is_like") - 0.05  # like's own history
    liked = df["is_like"] == 1
    assert df.loc[liked, "is_click"].mean() > df.loc[~liked, "is_click"].mean()  # related ...
    assert df.loc[liked, "is_click"].mean() < 0.9  # ... not the same


def test_like_shares_clicks_interaction_and_long_view_reads_it_reversed(signal_features):
    """The multi-task structure, from the raw files: X (group x tag) raises click and like and lowers long view;
    Y moves long view alone; and X's cells are pinned down by click's labels far better than by like's (what a
    like head gains by sharing with click)."""
    df = signal_features

    def auc(feature: str, label: str) -> float:
        return roc_auc_score(df[label], df[feature])

    assert auc("cross", "is_click") > 0.65 and auc("cross", "is_like") > 0.65, "X drives click and like"
    assert auc("cross", "long_view") < 0.4, "long view reads X reversed"
    # Y beyond X (the tables share rows and columns, so their cells correlate a little): long view's alone
    gain = {label: _auc(df, ["cross", "long_cross"], label) - _auc(df, ["cross"], label) for label in synthetic.TASKS}
    assert gain["long_view"] > 0.05 and max(gain["is_click"], gain["is_like"]) < 0.01, gain
    # each (group, tag) cell's rate, estimated from the first half of the users' rows: click's estimate follows X
    cells = df[df["group"].notna() & (df["tag0"] >= 0) & (df["user_id"] % 2 == 0)]
    by_cell = cells.groupby(["group", "tag0"]).agg(x=("cross", "first"), click=("is_click", "mean"),
                                                   like=("is_like", "mean"), n=("is_like", "size"))  # fmt: skip
    by_cell = by_cell[by_cell["n"] >= 20]
    r_click, r_like = (np.corrcoef(by_cell["x"], by_cell[label])[0, 1] for label in ("click", "like"))
    assert r_click > 0.8 and r_like < r_click - 0.1, (r_click, r_like)


def test_the_long_history_profile_plants_a_signal_beyond_the_last_50_clicks(tmp_path):
    """Profile ``long_history``: the same files and header, few users with long logs, and a click that depends on
    whether the video's author was clicked before. Rebuilt from the raw files one exposure at a time, "the author is
    among the user's earlier clicks" separates clicks far better over all earlier clicks than over the last 50: the
    evidence for returning authors lies 100+ clicks back, so a 500-event history beats a 50-event one."""
    from ctrbench.data.formats.kuairand.synthetic_long import EVENTS_PER_USER, LONG_HISTORY, RETURN_GAP

    facts = write_synthetic_kuairand(tmp_path, 18_000, seed=3, profile=LONG_HISTORY)
    assert facts["users"] == 18_000 // EVENTS_PER_USER and facts["planted"]["return_gap_clicks"] == RETURN_GAP
    assert (tmp_path / LOG_FILE).read_text().splitlines()[0] == REAL_LOG_HEADER
    log = pd.read_csv(tmp_path / LOG_FILE)
    author = dict(pd.read_csv(tmp_path / VIDEO_BASIC_FILE)[["video_id", "author_id"]].itertuples(index=False))
    clicks, recent, anywhere = [], [], []
    for _, user in log.groupby("user_id", sort=False):
        clicked, pending, now = [], [], None
        for time_ms, video, click in user[["time_ms", "video_id", "is_click"]].itertuples(index=False):
            if time_ms != now:  # a request's clicks are known after it
                clicked += pending
                pending, now = [], time_ms
            a = author.get(video)
            recent.append(a in clicked[-50:])
            anywhere.append(a in clicked)
            clicks.append(click)
            if click:
                pending.append(a)
    auc_recent, auc_anywhere = roc_auc_score(clicks, recent), roc_auc_score(clicks, anywhere)
    assert auc_anywhere > auc_recent + 0.08, (auc_recent, auc_anywhere)
    assert 0.3 < np.mean(clicks) < 0.5
