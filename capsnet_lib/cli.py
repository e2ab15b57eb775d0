"""What every command (`python -m capsnet_lib.<command>`) does with a mistake in its input: one line
on stderr, naming what was wrong, and exit status 2; never a traceback."""
import functools
import sys

USER_ERRORS = (ValueError, TypeError, OSError, ImportError)   # bad options, files, checkpoints, missing extras


def reports_errors(main):
    """Wrap a command's main(argv): a user error prints 'error: ...' and returns 2."""
    @functools.wraps(main)
    def command(argv=None):
        try:
            return main(argv)
        except USER_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return command
