"""Contact-log import and the profile derived from it: the shipped example, the bank log when
present, estimators on hand-made data, and bad files named by line and field."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from router.errors import InvalidArgument
from simulations.history import (
    BANK_PRESET,
    ColumnMapping,
    LogError,
    default_bank_log,
    derive_profile,
    read_log,
    read_log_with_report,
    summarize,
)
from simulations.profile import duty_spans, fit_handle, fit_patience, proficiency_from_counts

EXAMPLES = Path(__file__).resolve().parents[2] / "simulations" / "examples"
SMALL_LOG = EXAMPLES / "small_log.csv"
BANK_HEADER = (
    "vru_line,call_id,customer_id,priority,type,date,vru_entry,vru_exit,vru_time,"
    "q_start,q_exit,q_time,outcome,ser_start,ser_exit,ser_time,server"
)
BANK_ROWS = [
    "AA0101,1,0,0,PS,1999-08-02,9:00:00,9:00:10,10,9:00:10,9:00:40,30,AGENT,9:00:40,9:03:00,140,AVI",
    "AA0101,2,55,2,NE,1999-08-02,9:01:00,9:01:05,5,9:01:05,9:02:05,60,HANG,0:00:00,0:00:00,0,"
    "NO_SERVER",
    "AA0102,3,0,1,PS,1999-08-02,9:02:00,9:02:08,8,0:00:00,0:00:00,0,AGENT,9:02:08,9:05:00,172,"
    "SHARON",
    "AA0102,4,0,0,PS,1999-08-02,9:03:00,9:03:20,20,0:00:00,0:00:00,0,HANG,0:00:00,0:00:00,0,"
    "NO_SERVER",
    "AA0103,5,0,0,IN,1999-08-02,23:59:19,23:59:30,11,0:00:00,0:01:00,90,AGENT,0:01:00,0:04:00,180,"
    "AVI",
]


def write_bank(tmp_path: Path, rows: list[str], *, compress: bool = True) -> Path:
    text = "\n".join([BANK_HEADER, *rows]) + "\n"
    if compress:
        path = tmp_path / "bank.csv.gz"
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path = tmp_path / "bank.csv"
        path.write_text(text, encoding="utf-8")
    return path


def test_small_example_reads_every_channel_and_issue() -> None:
    contacts = read_log(SMALL_LOG, "generic")
    assert len(contacts) == 473
    assert {c.channel for c in contacts} == {"voice", "chat", "email"}
    assert {c.issue for c in contacts} == {"billing", "tech", "sales"}
    assert {c.outcome for c in contacts} == {"served", "abandoned", "phantom"}
    served = [c for c in contacts if c.outcome == "served"]
    assert all(c.handle_s is not None and c.agent_id for c in served)
    assert any(c.customer_id is None for c in contacts)


def test_yaml_mapping_reads_like_the_generic_preset() -> None:
    mapping = ColumnMapping.from_yaml(EXAMPLES / "small_log_mapping.yaml")
    assert read_log(SMALL_LOG, mapping) == read_log(SMALL_LOG, "generic")


def test_unknown_mapping_key_is_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"mapping\.arival: unknown key"):
        ColumnMapping.from_dict({"arival": "t", "issue": "i", "outcome": "o"})


def test_profile_of_the_small_example_accounts_for_every_contact() -> None:
    contacts = read_log(SMALL_LOG, "generic")
    profile = derive_profile(contacts, interval_s=900)
    assert sum(profile.arrivals.values()) == len(contacts)
    assert sum(profile.arrivals_by_channel.values()) == len(contacts)
    assert profile.days == ("2024-03-04", "2024-03-05")
    # Two weekdays, one of each: the mean rate per hour is four times the 15-minute count.
    assert sum(profile.arrival_rate_per_hour.values()) == pytest.approx(4 * len(contacts))
    assert set(profile.handle) == {"billing", "tech", "sales"}
    assert set(profile.skills) == {"ada", "bob", "cy", "dee", "eve", "fay"}
    assert profile.skills["cy"] == {"tech": profile.skills["cy"]["tech"]}  # a tech specialist
    for levels in profile.proficiency.values():
        assert max(levels.values()) == 5
        assert all(1 <= level <= 5 for level in levels.values())
    for contact in contacts:
        if contact.agent_id is not None:
            spans = profile.on_duty[contact.agent_id]
            assert any(start <= contact.service_start < end for start, end in spans)
    summary = summarize(contacts)
    assert summary.served + summary.abandoned + summary.phantom == len(contacts)
    assert summary.agents == 6


def test_kaplan_meier_and_exponential_patience_by_hand() -> None:
    fit = fit_patience([1, 2, 2, 3, 4], [True, False, True, True, False])
    assert fit.times_s == (1.0, 2.0, 3.0)
    assert fit.survival == pytest.approx((0.8, 0.6, 0.3))  # 4/5, ×3/4, ×1/2
    assert fit.rate_per_s == pytest.approx(3 / 12)
    assert fit.mean_s == pytest.approx(4.0)
    assert fit.median_s == 3.0
    assert (fit.abandoned, fit.censored) == (3, 2)


def test_handle_fit_ignores_zero_times_in_the_lognormal() -> None:
    fit = fit_handle([0.0, 100.0, 100.0])
    assert fit.mu == pytest.approx(4.60517, rel=1e-5)
    assert fit.sigma == 0.0
    assert fit.mean_s == pytest.approx(200 / 3)


def test_duty_spans_merge_small_gaps_only() -> None:
    services = [(0.0, 100.0), (1000.0, 1100.0), (5000.0, 5100.0)]
    assert duty_spans(services, 900, max_gap_s=1800) == ((0.0, 1800.0), (4500.0, 5400.0))


def test_proficiency_is_relative_to_the_main_issue() -> None:
    assert proficiency_from_counts({"PS": 100, "NE": 50, "TT": 1}) == {"PS": 5, "NE": 3, "TT": 1}


def test_bank_format_rows_become_contacts(tmp_path: Path) -> None:
    report = read_log_with_report(write_bank(tmp_path, BANK_ROWS))
    assert (report.rows, report.unqueued_abandons, len(report.skipped)) == (5, 1, 0)
    first, second, third, midnight = report.contacts
    assert first.id == "AA0101-1"
    assert (first.outcome, first.wait_s, first.handle_s, first.agent_id) == (
        "served",
        30,
        140,
        "AVI",
    )
    assert first.arrived_at % 86_400 == 9 * 3600 + 10  # the queue entry, read as UTC
    assert (second.outcome, second.customer_id, second.priority) == ("abandoned", "55", 2)
    assert (second.handle_s, second.agent_id) == (None, None)
    assert not third.queued and third.arrived_at % 86_400 == 9 * 3600 + 2 * 60 + 8  # vru_exit
    # Queued at midnight: "0:00:00" with a positive wait is a time, and it is the next day.
    assert midnight.queued
    assert midnight.arrived_at - first.arrived_at == 86_400 - 9 * 3600 - 10
    assert {c.channel for c in report.contacts} == {"voice"}


def test_missing_column_names_it(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(BANK_HEADER.replace("q_time", "queue_time") + "\n", encoding="utf-8")
    with pytest.raises(LogError) as caught:
        read_log(path, BANK_PRESET)
    assert caught.value.field == "q_time"
    assert "line 1" in str(caught.value)


def test_bad_time_names_line_and_field(tmp_path: Path) -> None:
    rows = list(BANK_ROWS)
    rows[1] = rows[1].replace("9:01:05,5,9:01:05", "9:01:05,5,9:61:05")
    path = write_bank(tmp_path, rows, compress=False)
    with pytest.raises(LogError) as caught:
        read_log(path, "bank", strict=True)
    assert (caught.value.line, caught.value.field) == (3, "q_start")
    assert "bank.csv: line 3: q_start:" in str(caught.value)


def test_junk_rows_are_skipped_and_counted_unless_strict(tmp_path: Path) -> None:
    good = BANK_ROWS[0]
    junk = good.replace(",AGENT,", ",LOST,")
    path = write_bank(tmp_path, [good] * 30 + [junk], compress=False)
    with capture_logs() as logs:
        report = read_log_with_report(path)
    assert len(report.contacts) == 30
    assert [(e.line, e.field) for e in report.skipped] == [(32, "outcome")]
    assert logs[0]["event"] == "log_rows_skipped" and logs[0]["skipped"] == 1
    with pytest.raises(LogError, match="line 32: outcome"):
        read_log(path, strict=True)


def test_a_mostly_bad_log_is_refused_even_when_lenient(tmp_path: Path) -> None:
    rows = [BANK_ROWS[0], BANK_ROWS[0].replace(",30,AGENT", ",x,AGENT")]
    with pytest.raises(LogError, match=r"line 3: q_time: not a number.*2 more bad rows"):
        read_log(write_bank(tmp_path, rows * 3), strict=False)


def test_wrong_field_count_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="line 2: row"):
        read_log(write_bank(tmp_path, [BANK_ROWS[0] + ",extra"]), strict=True)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(LogError, match="line 1: header"):
        read_log(empty)


@pytest.fixture(scope="module")
def bank_log() -> Path:
    path = default_bank_log()
    if path is None:
        expected = Path(__file__).resolve().parents[2].parent / "shared" / "data"
        pytest.skip(f"bank log absent at {expected}: the real-data tests need it")
    return path


def test_bank_log_reads_whole(bank_log: Path) -> None:
    report = read_log_with_report(bank_log)
    assert report.rows == 23_668
    assert report.skipped == ()
    assert len(report.contacts) + report.unqueued_abandons == report.rows
    contacts = report.contacts
    assert {c.issue for c in contacts} == {"PS", "PE", "IN", "NE", "NW", "TT"}
    assert {c.priority for c in contacts} == {0, 1, 2}
    assert Counter(c.outcome for c in contacts)["phantom"] == 199
    assert len({c.id for c in contacts}) == len(contacts)


def test_bank_profile_has_its_known_shape(bank_log: Path) -> None:
    contacts = read_log(bank_log)
    profile = derive_profile(contacts)
    summary = summarize(contacts)
    assert len(profile.days) == 15
    assert summary.served == 15_888
    assert 150 < summary.mean_handle_s < 250  # about three minutes (Brown et al.)
    assert len(profile.skills) == summary.agents > 20
    patience = profile.patience["PS"]
    assert 0 < patience.rate_per_s < 1 / 60  # regular customers wait minutes, not seconds
    assert all(a >= b for a, b in zip(patience.survival, patience.survival[1:], strict=False))
    # Handle times of the main issue are roughly lognormal with a sigma near one.
    assert 0.8 < profile.handle["PS"].sigma < 1.5
