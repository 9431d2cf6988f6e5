"""The leaderboard's reported figures cite papers by name and arXiv id, with a link to the paper."""
import re

from evaluation.reference_figures import reference_rows


def test_every_reported_figure_names_its_paper():
    rows = reference_rows()
    assert len(rows) == 49
    for row in rows:
        ids = re.findall(r"arXiv (\d{4}\.\d{5})", row["citation"])
        assert ids, row["citation"]
        assert row["url"] == f"https://arxiv.org/abs/{ids[0]}", row
        assert "seed" not in row["citation"].lower() and "digest" not in row["citation"].lower(), row["citation"]


def test_figures_are_the_published_ones():
    got = {(r["system"], r["benchmark"]): r["value"] for r in reference_rows()}
    assert got[("ERank-4B", "BRIGHT")] == 38.7 and got[("ERank-32B", "BRIGHT")] == 40.2
    assert got[("InsertRank (DeepSeek-R1)", "BRIGHT")] == 37.5
    assert got[("ReasonRank", "BRIGHT")] == 40.6 and got[("LimRank-7B", "BRIGHT")] == 28.0
