"""cli.reports_errors: the one place a command turns a user's mistake into one line and exit status 2."""
import pytest

from capsnet_lib.cli import reports_errors


def test_a_user_error_is_one_line_and_status_2_and_a_bug_still_raises(capsys):
    @reports_errors
    def main(argv=None):
        if argv == ["bad"]:
            raise ValueError("--epochs must be >= 1, got 0")
        if argv == ["bug"]:
            raise KeyError("a programming error must not be hidden as a user error")
        return 0

    assert main([]) == 0
    assert main(["bad"]) == 2
    assert capsys.readouterr().err == "error: --epochs must be >= 1, got 0\n"
    with pytest.raises(KeyError):
        main(["bug"])
